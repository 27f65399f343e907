"""The shipped layout (``deploy/``): server replicas with ``--no-controller`` beside a sharded
``slipway controller``, every one a real process, sharing only the store.

A signed push to a server that syncs nothing must reach the controller that owns the repository
(a one-hour poll: only the webhook explains a sync within seconds); an event stream opened on one
server shows the syncs the controller ran; each sync is notified once; a dashboard session made on
one server works on another, and ends there after a logout or a revoked token. The same pair on one
SQLite file works too.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from slipway.kube import Kube
from tests.gitservers import HttpGitServer, commit, push
from tests.manifests import configmap, dump

from .conftest import SlipwayServer, wait_until
from .test_notifications import Receiver
from .test_webhooks import SECRET, cm, headers, payload

pytestmark = pytest.mark.cluster


class Stream:
    """Reads a server's /api/v1/events in a thread of its own."""

    def __init__(self, server: SlipwayServer) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.client = server.client("viewer", timeout=httpx.Timeout(10, read=None))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event = ""
        try:
            with self.client.stream("GET", "/api/v1/events") as r:
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        self.events.append((event, json.loads(line.split(":", 1)[1])))
        except httpx.HTTPError:
            pass

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def controllers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"controller{len(procs)}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "slipway", "controller", "--concurrency", "4", *args],
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def register(server: SlipwayServer, url: str, namespace: str, notify: str) -> None:
    admin = server.client("admin")
    r = admin.post("/api/v1/repositories", json={"id": "app", "url": url, "poll_interval": "1h"})
    assert r.status_code == 201, r.text
    r = admin.post("/api/v1/workflows", json={
        "id": "app", "repository": "app", "target_path": "k8s", "auto_sync": True,
        "destination": {"namespace": namespace}, "notify": {"url": notify, "events": ["succeeded"]},
    })  # fmt: skip
    assert r.status_code == 201, r.text


def signed_push(server: SlipwayServer, url: str, delivery: str) -> httpx.Response:
    body = json.dumps(payload("github", url, "main")).encode()
    return server.client().post("/api/v1/webhooks/github", content=body, headers=headers("github", body, delivery))


def push_is_synced_by_the_controller(
    api: SlipwayServer, other: SlipwayServer, git: HttpGitServer, kube: Kube, namespace: str, start_controller: Any
) -> None:
    name = f"layout-{namespace}"
    work = git.create_repo(name, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    url = git.public_url(name)
    receiver = Receiver()
    receiver.failures_left = 0
    stream = Stream(other)
    try:
        register(api, url, namespace, receiver.url)
        start_controller()
        wait_until(lambda: cm(kube, namespace) == "1", 90, step=0.2)  # the controller's first check
        commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"}))})
        push(work)
        time.sleep(1)
        r = signed_push(api, url, f"d-{namespace}")
        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
        # Nothing here polls within the hour: only the webhook, reaching the controller, explains this.
        wait_until(lambda: cm(kube, namespace) == "2", 15, step=0.2)

        # The other server's stream shows both syncs the controller ran, started and finished.
        def finished() -> list[dict[str, Any]]:
            return [d for e, d in stream.events if e == "finished" and d.get("workflow") == "app"]

        done = wait_until(lambda: len(finished()) >= 2 and finished(), 20)
        assert {d["status"] for d in done} == {"succeeded"}, done
        started = {d["sync_id"] for e, d in stream.events if e == "started"}
        assert {d["sync_id"] for d in done} <= started, stream.events
        assert len({d["sync_id"] for d in done}) == len(done), stream.events  # each once, not once per follower

        # Each sync is notified once, whichever processes watch it.
        wait_until(lambda: len(receiver.received) >= 2, 20)
        time.sleep(3)
        per_sync = Counter(m["sync_id"] for m in receiver.received)
        assert set(per_sync.values()) == {1} and set(per_sync) == {d["sync_id"] for d in done}, receiver.received
    finally:
        stream.close()
        receiver.httpd.shutdown()


def test_a_push_to_a_server_without_controller_syncs_through_the_sharded_controller(  # type: ignore[no-untyped-def]
    start_server, controllers, git_http_server: HttpGitServer, kube: Kube, namespace: str, slipway_namespace: str
) -> None:
    env = {"SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": slipway_namespace, "SLIPWAY_WEBHOOK_SECRET": SECRET}
    a = start_server("--no-controller", env=env)
    b = start_server("--no-controller", env=env)
    b.tokens = a.tokens
    push_is_synced_by_the_controller(
        a, b, git_http_server, kube, namespace, lambda: controllers({**a.env}, "--shards", "3", "--identity", "ctl-0")
    )


def test_a_push_to_a_server_without_controller_on_one_sqlite_file(  # type: ignore[no-untyped-def]
    start_server, controllers, git_http_server: HttpGitServer, kube: Kube, namespace: str
) -> None:
    a = start_server("--no-controller", env={"SLIPWAY_WEBHOOK_SECRET": SECRET})
    push_is_synced_by_the_controller(a, a, git_http_server, kube, namespace, lambda: controllers({**a.env}))


def login(server: SlipwayServer, role: str) -> str:
    r = httpx.post(f"{server.url}/login", data={"token": server.tokens[role], "next": "/"},
                   headers={"Origin": server.url}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    return str(r.cookies["slipway_session"])


def whoami(server: SlipwayServer, cookie: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/whoami", cookies={"slipway_session": cookie})


def test_a_dashboard_session_works_on_every_server_replica_and_ends_everywhere(  # type: ignore[no-untyped-def]
    start_server, slipway_namespace: str, kube: Kube
) -> None:
    env = {"SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": slipway_namespace}
    a = start_server("--no-controller", env=env)
    b = start_server("--no-controller", env=env, tokens=False)
    b.tokens = a.tokens

    cookie = login(a, "operator")
    r = whoami(b, cookie)
    assert r.status_code == 200 and r.json()["role"] == "operator", r.text
    page = httpx.get(f"{b.url}/", cookies={"slipway_session": cookie})
    assert page.status_code == 200, page.text  # the dashboard itself, not the login form
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert csrf is not None
    # An unsafe request on B with the session's CSRF token from B's page.
    r = httpx.post(f"{b.url}/api/v1/workflows/none/sync", cookies={"slipway_session": cookie},
                   headers={"Origin": b.url, "X-CSRF-Token": csrf.group(1)})  # fmt: skip
    assert r.status_code == 404, r.text  # past authentication and CSRF: the workflow does not exist

    # The session id is not what the store keeps.
    secrets = kube.list(kube.discovery.lookup("v1", "Secret"), slipway_namespace)
    assert cookie not in json.dumps(secrets)

    # Logged out on B: A refuses it too.
    r = httpx.post(f"{b.url}/logout", data={"csrf": csrf.group(1)}, cookies={"slipway_session": cookie},
                   headers={"Origin": b.url}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    assert whoami(a, cookie).status_code == 401
    assert whoami(b, cookie).status_code == 401

    # A revoked token ends its sessions on every replica.
    cookie = login(b, "viewer")
    assert whoami(a, cookie).status_code == 200
    viewer_name = a.client("viewer").get("/api/v1/whoami").json()["name"]
    assert a.client("admin").delete(f"/api/v1/tokens/{viewer_name}").status_code == 200
    assert whoami(b, cookie).status_code == 401
    assert whoami(a, cookie).status_code == 401
