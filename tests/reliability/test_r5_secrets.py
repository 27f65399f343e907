"""R5 secrets never leak: planted credentials and Secret values, searched for everywhere slipway writes.

Planted: a Git token and a Git password (HTTPS), an SSH private key, the webhook secret, API
tokens of every role, and Secret values (one that changes). Exercised: the CLI (with ``--debug``
and ``-o json``), the server's API (diff, sync, history, resources, events), a signed webhook, the
controller, a hook that prints its whole environment, and failures (refused credentials, a Secret
the API server refuses). Searched: every output and log, ``ps`` samples taken all along, the raw
bytes of the state store, the history (hook output included), API responses, ``/metrics`` and the
event stream. A slipway never takes an SSH key passphrase (a key protected by one is refused), so
there is none to plant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from slipway.kube import Kube
from tests.gitservers import HttpGitServer, SshGitServer, commit, push

from .conftest import Cli, SlipwayServer


def secret_manifest(value: str) -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {value}\n"


def test_r5_planted_secrets_appear_nowhere(
    start_server: Any, cli: Cli, kube: Kube, namespace: str, tmp_path: Path, git_http_server: HttpGitServer,
    git_ssh_server: SshGitServer, record: Any,
) -> None:  # fmt: skip
    tag = secrets.token_hex(4)
    planted = {
        "git token": "tok-r5-" + secrets.token_hex(12),
        "git password": "pw-r5-" + secrets.token_hex(12),
        "webhook secret": "whsec-r5-" + secrets.token_hex(12),
        "secret value": "sv-r5-" + secrets.token_hex(12),
        "secret value 2": "sv2-r5-" + secrets.token_hex(12),
    }
    key_lines = [ln for ln in git_ssh_server.client_key.splitlines() if ln and not ln.startswith("-----")]
    planted["ssh key"] = max(key_lines, key=len)
    git_http_server.add_user(f"r5-bot-{tag}", planted["git token"])
    git_http_server.add_user(f"r5-user-{tag}", planted["git password"])
    files = {"k8s/app.yaml": secret_manifest(planted["secret value"]) + "---\n"
             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: '1'\n"}  # fmt: skip
    work = git_http_server.create_repo(f"r5-{tag}/app", files)
    git_ssh_server.create_repo(
        f"r5-{tag}/ssh", {"k8s/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n"}
    )

    server: SlipwayServer = start_server(env={"SLIPWAY_WEBHOOK_SECRET": planted["webhook secret"]})
    planted.update({f"api token ({role})": token for role, token in server.tokens.items()})
    outputs: list[str] = []
    samples: list[str] = []
    stop = threading.Event()

    def sample_ps() -> None:
        while not stop.is_set():
            samples.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample_ps)
    sampler.start()
    env = {**cli.env, "SLIPWAY_HOME": str(server.home), "SLIPWAY_GIT_CACHE": server.env["SLIPWAY_GIT_CACHE"],
           "R5_TOKEN": planted["git token"], "R5_PASSWORD": planted["git password"]}  # fmt: skip
    run = Cli(env, server.home, cli.cwd)
    key_file = tmp_path / "id_r5"
    key_file.write_text(git_ssh_server.client_key)
    key_file.chmod(0o600)
    try:
        url = git_http_server.url(f"r5-{tag}/app")
        steps = [
            ("--debug", "repo", "add", url, "--id", "app", "--username", f"r5-bot-{tag}", "--token-env", "R5_TOKEN"),
            ("--debug", "repo", "add", url, "--id", "app-pw", "--username", f"r5-user-{tag}", "--password-env",
             "R5_PASSWORD"),
            ("--debug", "repo", "add", git_ssh_server.url(f"r5-{tag}/ssh"), "--id", "ssh", "--ssh-key", str(key_file)),
            ("-o", "json", "repo", "list"), ("repo", "show", "app"), ("repo", "show", "app-pw"),
            ("workflow", "create", "--id", "app", "--repository", "app", "--path", "k8s", "--namespace", namespace,
             "--pre-hook", "env | sort", "--post-hook", "echo done"),
            ("workflow", "create", "--id", "ssh", "--repository", "ssh", "--path", "k8s", "--namespace", namespace),
            ("--debug", "diff", "app"), ("-o", "json", "diff", "app"), ("--debug", "sync", "app", "--yes"),
            ("sync", "ssh", "--yes"), ("-o", "json", "history", "app"), ("history", "app"),
            ("-o", "json", "workflow", "status", "app"),
        ]  # fmt: skip
        for step in steps:
            r = run(*step)
            outputs.append(r.stdout + r.stderr)
            assert "Traceback" not in r.stderr, r.stderr

        # A changed Secret value, announced by a signed webhook, synced by the controller; the stream watched.
        events: list[str] = []

        def watch() -> None:
            try:
                with (
                    httpx.Client(base_url=server.url, timeout=None) as c,
                    c.stream(
                        "GET", "/api/v1/events", headers={"Authorization": f"Bearer {server.tokens['viewer']}"}
                    ) as resp,
                ):
                    for line in resp.iter_lines():
                        events.append(line)
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                return  # the server stopped at the end of the test

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        admin = server.client("admin")
        assert admin.patch("/api/v1/workflows/app", json={"auto_sync": True}).status_code == 200
        sha = commit(work, {"k8s/app.yaml": secret_manifest(planted["secret value 2"]) + "---\n"
                            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: '2'\n"})  # fmt: skip
        push(work)
        body = json.dumps({"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": url}}).encode()
        digest = hmac.new(planted["webhook secret"].encode(), body, hashlib.sha256).hexdigest()
        r = server.client().post("/api/v1/webhooks/github", content=body, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "r5", "X-Hub-Signature-256": f"sha256={digest}",
            "Content-Type": "application/json"})  # fmt: skip
        outputs.append(r.text)
        cms = kube.discovery.lookup("v1", "ConfigMap")
        deadline = time.monotonic() + 60
        while (kube.get(cms, namespace, "app") or {}).get("data", {}).get("v") != "2":
            assert time.monotonic() < deadline, "the webhook's commit was not applied"
            time.sleep(0.3)
        operator = server.client("operator")
        for route in ("/api/v1/workflows", "/api/v1/workflows/app", "/api/v1/workflows/app/diff",
                      "/api/v1/workflows/app/history", "/api/v1/workflows/app/resources", "/api/v1/repositories",
                      "/api/v1/repositories/app", "/api/v1/repositories/app-pw", "/metrics"):  # fmt: skip
            resp = operator.get(route)
            assert resp.status_code == 200, (route, resp.text)
            outputs.append(resp.text)
        outputs.append(operator.post("/api/v1/workflows/app/rollback", json={"reason": "r5"}).text)

        # Failures: refused credentials, a Secret the API server refuses.
        git_http_server.add_user(f"r5-bot-{tag}", "changed")
        r = run("--debug", "diff", "app")
        outputs.append(r.stdout + r.stderr)
        assert r.returncode == 2 and "refused" in r.stderr
        git_http_server.add_user(f"r5-bot-{tag}", planted["git token"])
        commit(work, {"k8s/app.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: "
                      + planted["secret value"] + "!!\n"})  # fmt: skip
        push(work)
        r = run("--debug", "sync", "app", "--yes")
        outputs.append(r.stdout + r.stderr)
        assert r.returncode == 2
    finally:
        stop.set()
        sampler.join(10)
    time.sleep(1)
    server.stop()
    outputs.append(server.log_text())
    assert any("finished" in e for e in events), "the event stream was watched during the syncs"
    outputs += ["\n".join(events), "\n".join(samples)]
    outputs.append(json.dumps([h.hooks for h in server.engine().history("app")]))
    store_bytes = b"".join(p.read_bytes() for p in server.home.glob("state.db*"))
    hooks_seen = json.dumps([h.hooks for h in server.engine().history("app")])
    assert "SLIPWAY_WORKFLOW_ID=app" in hooks_seen  # the env hook ran and its output was kept (scrubbed)
    found = {
        what: where
        for what, value in planted.items()
        for where, text in [("outputs, logs, API, metrics, events, ps, history", "\n".join(outputs))]
        if value in text
    }
    found.update(
        {what: "the state store's raw bytes" for what, value in planted.items() if value.encode() in store_bytes}
    )
    assert not found, f"planted secrets found: {found}"
    record("R5", "planted credentials (Git token and password, SSH key, webhook secret, API tokens) and Secret values "
           "in logs, ps, the state store, diffs, errors, hook output, API answers, metrics and the event stream",
           len(planted), len(planted) - len(found), "make reliability  # tests/reliability/test_r5_secrets.py",
           ps_samples=len(samples), bytes_searched=sum(len(o) for o in outputs) + len(store_bytes))  # fmt: skip
