"""Tokens and the webhook secret are never in the log, the store's bytes, ``ps`` or an API answer."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster


def test_tokens_and_the_webhook_secret_are_nowhere_but_where_they_are_made(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    webhook_secret = "whsec-" + secrets.token_hex(20)
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(webhook_secret + "\n")
    secret_file.chmod(0o600)
    server = start_server("--webhook-secret-file", str(secret_file))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "slipway", *args], env=server.env, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip

    # made by the CLI: printed once, by `token create` only
    made = cli("-o", "json", "token", "create", "deployer", "--role", "admin")
    assert made.returncode == 0, made.stderr
    admin_token = json.loads(made.stdout)["token"]
    text = cli("token", "create", "reader", "--role", "viewer")
    assert text.returncode == 0 and "shown this once only" in text.stderr
    viewer_token = text.stdout.strip()
    assert viewer_token.startswith("slw_") and len(text.stdout.splitlines()) == 1
    tokens = [admin_token, viewer_token, *server.tokens.values()]
    listing = cli("token", "list").stdout + cli("-o", "json", "token", "list").stdout
    assert "deployer" in listing and "reader" in listing

    # used over the API, good and bad
    answers: list[str] = []
    admin = server.client(headers={"Authorization": f"Bearer {admin_token}"})
    viewer = server.client(headers={"Authorization": f"Bearer {viewer_token}"})
    for client, path in ((admin, "/api/v1/whoami"), (admin, "/api/v1/tokens"), (viewer, "/api/v1/workflows"),
                         (viewer, "/api/v1/tokens"), (admin, "/openapi.json"), (admin, "/metrics")):  # fmt: skip
        r = client.get(path)
        answers.append(r.text + json.dumps(dict(r.headers)))
    near_miss = admin_token[:-4] + "AAAA"
    r = server.client(headers={"Authorization": f"Bearer {near_miss}"}).get("/api/v1/whoami")
    assert r.status_code == 401
    answers.append(r.text + json.dumps(dict(r.headers)))
    made_by_api = admin.post("/api/v1/tokens", json={"name": "made-by-api", "role": "operator"})
    assert made_by_api.status_code == 201 and made_by_api.headers["cache-control"] == "no-store"
    tokens.append(made_by_api.json()["token"])
    assert server.client(headers={"Authorization": f"Bearer {tokens[-1]}"}).get("/api/v1/whoami").status_code == 200
    r = admin.get("/api/v1/tokens")
    answers.append(r.text)
    assert {t["name"] for t in r.json()} >= {"deployer", "reader", "made-by-api"}

    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert f"--webhook-secret-file {secret_file}" in ps  # the server is there...
    store = b"".join(p.read_bytes() for p in server.home.rglob("*") if p.is_file())
    log = server.log_text()
    assert "GET /api/v1/whoami" in log  # ...and logs requests
    for token in tokens:
        secret_part = token.split("_", 2)[2]
        for where, haystack in (("ps", ps), ("the log", log), ("an API answer", "\n".join(answers)),
                                ("token list", listing)):  # fmt: skip
            assert secret_part not in haystack, f"a token is in {where}"
        assert secret_part.encode() not in store, "a token is in the state store"
    for where, haystack in (("ps", ps), ("the log", log), ("an API answer", "\n".join(answers))):
        assert webhook_secret not in haystack, f"the webhook secret is in {where}"
    assert webhook_secret.encode() not in store
