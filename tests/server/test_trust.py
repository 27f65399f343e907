"""Who may make the server work, and for how long: planning routes, throttling, revocation, proxies.

Each test drives the real server over HTTP: a viewer never makes it fetch, render or dry-run
(it reads what an operator last computed); one client's failed tokens never lock out another
client (the client is the peer, or what a trusted proxy says in X-Forwarded-For); revoking a
token with the CLI ends its open event streams and dashboard sessions within a second; a
webhook delivery that failed with a 5xx is processed when the provider sends it again; the
session cookie is Secure behind a TLS proxy; /metrics can ask for a token or be off.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.gitservers import commit, push
from tests.manifests import configmap, dump

from .conftest import SlipwayServer, wait_until
from .test_api import setup_workflow
from .test_webhooks import SECRET, headers, payload

pytestmark = pytest.mark.cluster

PLANNING = ("/resources?manifests=true", "/resources", "/diff")


def test_a_viewer_never_plans_and_reads_what_an_operator_last_computed(
    start_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, work = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    viewer, operator = server.client("viewer"), server.client("operator")
    base = f"/api/v1/workflows/{wf}"

    # Nothing computed yet: a viewer is refused, and says what would fill it.
    for route in PLANNING:
        r = viewer.get(base + route)
        assert r.status_code == 403, (route, r.text)
        assert "needs operator" in r.json()["error"] and "nothing was computed" in r.json()["error"], route
    assert viewer.get("/api/v1/workflows/nope/resources").status_code == 404  # an unknown workflow stays 404

    # An operator plans (both routes), which is what viewers then read.
    computed = operator.get(base + "/resources?manifests=true").json()
    plan = operator.get(base + "/diff").json()
    assert computed["computed"]["by"].startswith("token:operator-") and plan["summary"]["created_resources"] == 1

    # Git now holds a document that cannot render: any plan would fail with 422. A viewer's
    # answers are what was computed before — so nothing was fetched, rendered or dry-run for them.
    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"})), "k8s/broken.yaml": "a: [unclosed\n"})
    push(work)
    assert operator.get(base + "/resources").status_code == 422  # an operator does plan again
    started = time.monotonic()
    rows = viewer.get(base + "/resources?manifests=true").json()
    assert rows["resources"] == computed["resources"] and rows["computed"] == computed["computed"]
    assert "data:\n  v: '1'" in rows["resources"][0]["desired"]
    plain = viewer.get(base + "/resources").json()["resources"]
    assert [r["resource"] for r in plain] == ["ConfigMap/app"] and "desired" not in plain[0]
    cached = viewer.get(base + "/diff").json()
    assert cached["fingerprint"] == plan["fingerprint"] and cached["summary"] == plan["summary"]
    assert time.monotonic() - started < 5
    assert viewer.post(base + "/sync").status_code == 403  # reading a plan is not syncing it

    # A workflow that is changed or removed forgets what was computed for it.
    assert server.client("admin").patch(base, json={"target_path": "k8s"}).status_code == 200
    assert viewer.get(base + "/resources").status_code == 403


def test_a_viewer_reading_a_workflow_gets_the_stored_assessment_and_never_plans(
    start_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, work = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    viewer, operator = server.client("viewer"), server.client("operator")
    base = f"/api/v1/workflows/{wf}"

    # Nothing computed yet: a viewer's GET says so instead of fetching, rendering and planning.
    first = viewer.get(base)
    assert first.status_code == 200, first.text
    assert first.json()["sync_status"]["status"] == "Unknown" and first.json()["assessed_at"] is None
    assert "objects" not in first.json() and first.json()["config"]["id"] == wf

    # An operator's GET computes now; a viewer then reads that, with its age.
    computed = operator.get(base).json()
    assert computed["sync_status"]["status"] == "OutOfSync" and computed["assessed_at"]
    head = computed["sync_status"]["revision"]

    # Git moves: a viewer still reads the stored answer (nothing fetched for them), an operator the new one.
    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"})), "k8s/b.yaml": dump(configmap("b", {"v": "1"}))})
    push(work)
    seen = viewer.get(base).json()
    assert seen["sync_status"]["revision"] == head and seen["assessed_at"] == computed["assessed_at"]
    assert isinstance(seen["assessed_age"], (int, float)) and "objects" not in seen
    assert operator.get(base).json()["sync_status"]["revision"] != head


def _bad(n: int) -> str:
    return f"slw_{secrets.token_hex(6)}_{'x' * 30}{n:013d}"


def _guess(server: SlipwayServer, how: dict[str, Any], tokens: list[str]) -> list[int]:
    """Each token once, all at once (a sequence would be slowed down for minutes), from one client."""

    def one(token: str) -> int:
        with server.client(headers={"Authorization": f"Bearer {token}", **how.get("headers", {})},
                           transport=how.get("transport")) as c:  # fmt: skip
            return c.get("/api/v1/whoami").status_code

    with ThreadPoolExecutor(len(tokens)) as pool:
        return list(pool.map(one, tokens))


def _login(
    server: SlipwayServer, token: str, headers: dict[str, str] | None = None, transport: Any = None
) -> httpx.Response:
    with server.client(transport=transport) as c:
        return c.post("/login", content=f"token={token}&next=/",
                      headers={"Origin": server.url, "Content-Type": "application/x-www-form-urlencoded",
                               **(headers or {})})  # fmt: skip


def test_one_clients_failed_tokens_never_lock_out_another_client(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server("--forwarded-allow-ips", "127.0.0.1")
    a, a2 = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    b, c = {"X-Forwarded-For": "198.51.100.9"}, {"X-Forwarded-For": "198.51.100.10"}
    viewer_id = server.tokens["viewer"].split("_")[1]
    assert server.client("viewer").get("/api/v1/whoami").status_code == 200  # its holder has used it
    # 60 made-up tokens from client A (through the trusted proxy): A is refused from then on.
    codes = _guess(server, {"headers": a}, [_bad(n) for n in range(60)])
    assert set(codes) <= {401, 429} and codes.count(401) >= 50
    with server.client(headers={"Authorization": f"Bearer {_bad(99)}", **a}) as guesser:
        assert guesser.get("/api/v1/whoami").status_code == 429
    # 60 wrong secrets for the viewer's token name from A2: that name is refused to unproven
    # attempts, whichever client makes them ...
    codes = _guess(server, {"headers": a2}, [f"slw_{viewer_id}_{'y' * 30}{n:013d}" for n in range(60)])
    assert set(codes) <= {401, 429} and codes.count(401) >= 50
    with server.client(headers={"Authorization": f"Bearer slw_{viewer_id}_{'z' * 43}", **c}) as guesser:
        assert guesser.get("/api/v1/whoami").status_code == 429

    # Client B: every valid token at once, unheld, and the dashboard's login too.
    for role in ("viewer", "operator", "admin"):
        started = time.monotonic()
        r = server.client(role, headers=b).get("/api/v1/whoami")
        assert r.status_code == 200 and time.monotonic() - started < 1.0, (role, r.text)
    r = _login(server, server.tokens["operator"], headers=b)
    assert r.status_code == 303 and "slipway_session=" in r.headers["set-cookie"]

    # The proxy's own requests (no X-Forwarded-For) are a client of their own, not A either.
    assert server.client("operator").get("/api/v1/whoami").status_code == 200


def test_an_untrusted_peer_cannot_choose_its_client_address(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()  # no trusted proxy: X-Forwarded-For is the client's word, ignored
    codes = _guess(server, {"headers": {"X-Forwarded-For": "203.0.113.7"}}, [_bad(n) for n in range(60)])
    assert codes.count(401) >= 50
    r = server.client("admin", headers={"X-Forwarded-For": "198.51.100.9"}).get("/api/v1/whoami")
    assert r.status_code == 429  # the same peer as the guesser, whatever it claims
    assert _login(server, server.tokens["admin"], headers={"X-Forwarded-For": "198.51.100.9"}).status_code == 429

    # Another peer (another loopback address) is another client: its valid tokens and login pass.
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    r = server.client("admin", transport=other).get("/api/v1/whoami")
    assert r.status_code == 200, r.text
    r = _login(server, server.tokens["operator"], transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert r.status_code == 303


class Stream:
    """An open /api/v1/events stream on a socket of its own, read in a thread; ``ended`` is set when
    the server closes it, and :meth:`close` closes it as a browser tab does (the server sees it)."""

    def __init__(self, server: SlipwayServer, **headers: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=None)
        lines = ["GET /api/v1/events HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.text = ""
        self.connected, self.ended = threading.Event(), threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.connected.wait(20), "the stream did not start"

    @property
    def status(self) -> int:
        return int(self.text.split(" ", 2)[1])

    @property
    def events(self) -> list[str]:
        return re.findall(r"^event: (\S+)", self.text, re.MULTILINE)

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.text += chunk.decode()
                if " 200 " not in self.text.split("\r\n", 1)[0] or "event: hello" in self.text:
                    self.connected.set()
        except OSError:
            pass
        finally:
            self.connected.set()
            self.ended.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _revoke(server: SlipwayServer, name: str) -> float:
    r = subprocess.run([sys.executable, "-m", "slipway", "token", "revoke", name], env=server.env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return time.monotonic()


@pytest.mark.parametrize("store", ["sqlite", "kubernetes"])
def test_revoking_a_token_with_the_cli_ends_its_open_streams_and_sessions(
    start_server, store: str, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    env = {}
    if store == "kubernetes":  # the CLI revokes in the cluster; the server reads it there
        env = {"SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": request.getfixturevalue("slipway_namespace")}
    server = start_server(env=env)
    name = server.client("viewer").get("/api/v1/whoami").json()["name"]
    login = _login(server, server.tokens["viewer"])
    assert login.status_code == 303
    cookie = login.headers["set-cookie"].split(";")[0]
    by_token = Stream(server, Authorization=f"Bearer {server.tokens['viewer']}")
    by_session = Stream(server, Cookie=cookie)
    other = Stream(server, Authorization=f"Bearer {server.tokens['operator']}")
    try:
        assert by_token.status == by_session.status == 200
        time.sleep(1.5)
        assert not by_token.ended.is_set() and not by_session.ended.is_set()  # open streams stay open
        revoked = _revoke(server, name)
        assert by_token.ended.wait(3) and by_session.ended.wait(3)
        assert time.monotonic() - revoked < 2.0  # checked about every second
        assert by_token.events[-1] == "ended" and by_session.events[-1] == "ended"
        assert not other.ended.is_set()  # another token's stream goes on
        with httpx.Client(base_url=server.url, headers={"Cookie": cookie}) as raw:
            assert raw.get("/api/v1/whoami").status_code == 401
            assert raw.get("/").status_code == 303  # the dashboard sends it to the login form
    finally:
        for s in (by_token, by_session, other):
            s.close()


def test_a_token_may_hold_only_so_many_streams(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    viewer, operator = (f"Bearer {server.tokens[role]}" for role in ("viewer", "operator"))
    streams = [Stream(server, Authorization=viewer) for _ in range(10)]
    try:
        assert all(s.status == 200 for s in streams)
        with server.client("viewer").stream("GET", "/api/v1/events") as r:
            assert r.status_code == 429
            assert "10 event streams" in json.loads(r.read())["error"]
        extra = Stream(server, Authorization=operator)  # another token is not counted with it
        assert extra.status == 200
        extra.close()
        streams.pop().close()  # a tab closed: its place is free again
        again = wait_until(lambda: (s := Stream(server, Authorization=viewer)).status == 200 and s, 5, step=0.2)
        streams.append(again)
    finally:
        for s in streams:
            s.close()


def test_a_webhook_delivery_that_failed_with_a_5xx_is_processed_when_sent_again(
    start_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server(env={"SLIPWAY_WEBHOOK_SECRET": SECRET})
    wf, work = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app"))})
    url = str(work.with_name(work.name + ".git"))
    admin = server.client("admin")
    creds = {"type": "userpass", "username": "u", "password": "p"}
    r = admin.post(
        "/api/v1/repositories", json={"id": "with-creds", "url": "http://127.0.0.1:9/x.git", "credentials": creds}
    )
    assert r.status_code == 201, r.text
    body = json.dumps(payload("github", url, "main")).encode()
    delivery = "d-" + secrets.token_hex(8)

    # The state store cannot be read for a moment (a credential it cannot decrypt): a 500.
    db = sqlite3.connect(server.home / "state.db")
    [(blob,)] = db.execute("SELECT credentials FROM repositories WHERE id = 'with-creds'").fetchall()
    with db:
        db.execute("UPDATE repositories SET credentials = ? WHERE id = 'with-creds'", (b"not-a-fernet-token",))
    r = httpx.post(f"{server.url}/api/v1/webhooks/github", content=body, headers=headers("github", body, delivery))
    assert r.status_code == 500, r.text
    with db:
        db.execute("UPDATE repositories SET credentials = ? WHERE id = 'with-creds'", (blob,))
    db.close()

    # GitHub sends the same delivery again: it is processed, not taken for a duplicate.
    r = httpx.post(f"{server.url}/api/v1/webhooks/github", content=body, headers=headers("github", body, delivery))
    assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
    assert r.json()["repositories"] == [f"r-{namespace}"[:60]]
    r = httpx.post(f"{server.url}/api/v1/webhooks/github", content=body, headers=headers("github", body, delivery))
    assert r.json()["status"] == "duplicate"  # once processed, it is not done twice
    del wf


def _cookie_flags(r: httpx.Response) -> set[str]:
    assert r.status_code == 303, r.text
    return {part.strip().lower() for part in r.headers["set-cookie"].split(";")[1:]}


def test_the_session_cookie_is_secure_behind_a_tls_proxy(start_server) -> None:  # type: ignore[no-untyped-def]
    proxied = start_server("--forwarded-allow-ips", "127.0.0.0/8")
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.9"}
    origin = {"Origin": f"https://127.0.0.1:{proxied.port}"}
    assert "secure" in _cookie_flags(_login(proxied, proxied.tokens["viewer"], headers={**https, **origin}))
    assert "secure" not in _cookie_flags(_login(proxied, proxied.tokens["viewer"]))  # plain HTTP, said so

    untrusted = start_server()  # X-Forwarded-Proto from a peer that is not a trusted proxy: ignored
    origin = {"Origin": f"https://127.0.0.1:{untrusted.port}"}
    assert "secure" not in _cookie_flags(_login(untrusted, untrusted.tokens["viewer"], headers={**https, **origin}))

    always = start_server("--secure-cookies")  # a TLS proxy that says nothing: the explicit setting
    assert "secure" in _cookie_flags(_login(always, always.tokens["viewer"]))


def test_metrics_can_want_a_token_or_be_off(start_server) -> None:  # type: ignore[no-untyped-def]
    guarded = start_server("--metrics", "token")
    assert guarded.client().get("/metrics").status_code == 401
    r = guarded.client("viewer").get("/metrics")
    assert r.status_code == 200 and "slipway_api_requests_total" in r.text
    off = start_server("--metrics", "off")
    assert off.client("admin").get("/metrics").status_code == 404
    assert start_server().client().get("/metrics").status_code == 200  # open, as before, unless asked
