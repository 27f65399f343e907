"""Push webhooks of each provider against the real server, a real Git server and the real cluster."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import pytest

from slipway.kube import Kube
from tests.gitservers import HttpGitServer, commit, push
from tests.manifests import configmap, dump

from .conftest import SlipwayServer, wait_until

pytestmark = pytest.mark.cluster

SECRET = "whsec-" + secrets.token_hex(16)


def payload(provider: str, url: str, branch: str) -> dict[str, Any]:
    ref = f"refs/heads/{branch}"
    # Each provider names the repository by several URLs; the one registered is written differently.
    web = url.removesuffix(".git")
    if provider in ("github", "gitea"):
        upper = url.replace("http://127.0.0.1", "HTTP://user@127.0.0.1").upper()  # scheme, userinfo and case differ
        return {"ref": ref, "after": "0" * 40, "repository": {"clone_url": upper, "html_url": web}}
    if provider == "gitlab":
        return {"object_kind": "push", "ref": ref, "project": {"git_http_url": url, "web_url": web}}
    return {
        "eventKey": "repo:refs_changed",
        "repository": {"links": {"clone": [{"href": url, "name": "http"}], "self": [{"href": web}]}},
        "changes": [{"ref": {"id": ref, "displayId": branch, "type": "BRANCH"}, "type": "UPDATE"}],
    }


def headers(provider: str, body: bytes, delivery: str, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "github": {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": f"sha256={digest}"},
        "gitlab": {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": secret},
        "gitea": {"X-Gitea-Event": "push", "X-Gitea-Delivery": delivery, "X-Gitea-Signature": digest},
        "bitbucket": {
            "X-Event-Key": "repo:refs_changed",
            "X-Request-Id": delivery,
            "X-Hub-Signature": f"sha256={digest}",
        },
    }[provider] | {"Content-Type": "application/json"}


def cm(kube: Kube, namespace: str) -> str | None:
    obj = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "app")
    return None if obj is None else obj["data"]["v"]


def auto_workflow(server: SlipwayServer, url: str, namespace: str) -> str:
    admin = server.client("admin")
    # A one-hour poll: only the webhook can explain a quick sync after the first one.
    r = admin.post("/api/v1/repositories", json={"id": "app", "url": url, "poll_interval": "1h"})
    assert r.status_code == 201, r.text
    r = admin.post("/api/v1/workflows", json={"id": "app", "repository": "app", "target_path": "k8s", "auto_sync": True,
                                              "destination": {"namespace": namespace}})  # fmt: skip
    assert r.status_code == 201, r.text
    return "app"


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea", "bitbucket"])
def test_a_signed_push_is_applied_within_5s_with_a_1h_poll(
    provider: str, start_server, git_http_server: HttpGitServer, kube: Kube, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    name = f"hooks-{provider}-{secrets.token_hex(3)}"
    work = git_http_server.create_repo(name, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    url = git_http_server.public_url(name)
    server = start_server(env={"SLIPWAY_WEBHOOK_SECRET": SECRET})
    auto_workflow(server, url, namespace)
    wait_until(lambda: cm(kube, namespace) == "1", 60, step=0.2)  # the first check after start-up
    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"}))})
    push(work)
    hook = server.client()
    path = f"/api/v1/webhooks/{provider}"

    # a bad signature is 401 and does nothing
    body = json.dumps(payload(provider, url, "main")).encode()
    r = hook.post(path, content=body, headers=headers(provider, body, "d-bad", secret="wrong"))
    assert r.status_code == 401 and r.json()["error"] == "bad or missing signature"
    # a push to another branch of the same repository does nothing
    other = json.dumps(payload(provider, url, "feature")).encode()
    r = hook.post(path, content=other, headers=headers(provider, other, "d-other"))
    assert r.status_code == 202 and r.json()["status"] == "ignored", r.text
    time.sleep(2)
    assert cm(kube, namespace) == "1"

    # the signed push of main: applied within 5 s
    sent = time.monotonic()
    r = hook.post(path, content=body, headers=headers(provider, body, "d-good"))
    assert r.status_code == 202 and r.json() == {"status": "accepted", "repositories": ["app"], "checking": ["app"]}
    wait_until(lambda: cm(kube, namespace) == "2", 5, step=0.05)
    took = time.monotonic() - sent
    assert took < 5, took
    # the same delivery again is ignored
    r = hook.post(path, content=body, headers=headers(provider, body, "d-good"))
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    history = server.client("viewer").get("/api/v1/workflows/app/history").json()
    assert [(h["trigger"], h["status"]) for h in history] == [("auto", "succeeded"), ("auto", "succeeded")]

    metrics = server.client().get("/metrics").text
    for outcome, n in (("bad_signature", 1), ("ignored", 1), ("accepted", 1), ("duplicate", 1)):
        assert f'slipway_webhook_deliveries_total{{outcome="{outcome}",provider="{provider}"}} {n}.0' in metrics


def test_webhooks_are_off_without_a_secret_and_a_ping_is_answered(start_server) -> None:  # type: ignore[no-untyped-def]
    off = start_server()
    r = off.client().post("/api/v1/webhooks/github", json={}, headers={"X-GitHub-Event": "ping"})
    assert r.status_code == 404 and "webhooks are off" in r.json()["error"]
    on = start_server(env={"SLIPWAY_WEBHOOK_SECRET": SECRET})
    body = b'{"zen": "hello"}'
    h = headers("github", body, "ping-1") | {"X-GitHub-Event": "ping"}
    r = on.client().post("/api/v1/webhooks/github", content=body, headers=h)
    assert r.status_code == 200 and r.json() == {"status": "pong"}
    big = b"{" + b" " * (1024 * 1024) + b"}"
    r = on.client().post("/api/v1/webhooks/github", content=big, headers=headers("github", big, "big-1"))
    assert r.status_code == 413
