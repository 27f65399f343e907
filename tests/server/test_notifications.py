"""Notifications received by a real HTTP receiver on loopback, retried when it fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.gitservers import commit, push
from tests.manifests import configmap, dump

from .conftest import wait_until
from .test_api import finish, setup_workflow

pytestmark = pytest.mark.cluster

PATH_SECRET = "T0K3N-" + "a1b2c3d4" * 3
QUERY_SECRET = "q-" + "z9y8x7" * 3


class Receiver:
    """A webhook receiver: answers 500 to the first delivery (to be retried), then 200."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.failures_left = 1
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(500)
                else:
                    assert self.headers["Content-Type"] == "application/json"
                    receiver.received.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{PATH_SECRET}?key={QUERY_SECRET}"

    def events(self) -> list[str]:
        return [m["event"] for m in self.received]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_notifications_for_success_rollback_failure_and_degraded(
    start_server, receiver: Receiver, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, work = setup_workflow(
        server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))},
        notify={"url": receiver.url, "events": ["succeeded", "failed", "rolled_back", "degraded"]},
    )  # fmt: skip
    operator = server.client("operator")
    first = finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert first["status"] == "succeeded"
    # delivered on the second try (the receiver failed the first)
    wait_until(lambda: receiver.events() == ["succeeded"], 20)
    assert (
        len(receiver.paths) == 2
        and receiver.paths[0] == receiver.paths[1] == f"/hooks/{PATH_SECRET}?key={QUERY_SECRET}"
    )
    message = receiver.received[0]
    assert message["workflow"] == wf and message["sync_id"] == first["id"] and message["kind"] == "sync"
    assert message["text"].startswith(
        f"slipway: sync of workflow {wf} succeeded at {first['result']['commit_hash'][:12]}"
    )

    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"}))})
    push(work)
    assert finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])["status"] == "succeeded"
    rb = finish(server, operator.post(f"/api/v1/workflows/{wf}/rollback", json={"reason": "v2 is bad"}).json()["id"])
    assert rb["status"] == "succeeded"
    wait_until(lambda: receiver.events() == ["succeeded", "succeeded", "rolled_back"], 20)
    assert "v2 is bad" in receiver.received[-1]["text"]

    # a sync refused before anything was applied (the plan moved): its own word, never "failed"
    moved = operator.post(f"/api/v1/workflows/{wf}/sync", json={"expected_plan": "0" * 16}).json()["id"]
    assert finish(server, moved)["status"] == "refused"
    threading.Event().wait(2)
    assert receiver.events() == ["succeeded", "succeeded", "rolled_back"]  # refused is not asked for here

    # a sync the cluster refuses: failed
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Valid_Name"}, "data": {"k": "v"}}
    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "3"}), bad)})
    push(work)
    assert finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])["status"] == "failed"
    wait_until(lambda: receiver.events()[-1:] == ["failed"], 20)
    assert receiver.received[-1]["status"] == "failed" and "Not_A_Valid_Name" in receiver.received[-1]["text"]

    # a workflow the controller finds degraded (its repository is gone), once however often it looks
    server.client("admin").patch(f"/api/v1/workflows/{wf}", json={"auto_sync": True})
    server.client("admin").post("/api/v1/repositories", json={"id": f"r-{namespace}"[:60],
                                "url": str(tmp_path / "gone.git"), "poll_interval": "1s"})  # fmt: skip
    wait_until(lambda: receiver.events()[-1:] == ["degraded"], 30)
    assert "source error" in receiver.received[-1]["text"]
    n = len(receiver.received)
    wait_until(lambda: "next check in" in server.log_text(), 10)
    threading.Event().wait(3)
    assert len(receiver.received) == n

    # the URL's secrets never reach the log; its host and first segment do
    log = server.log_text()
    assert PATH_SECRET not in log and QUERY_SECRET not in log
    assert f"http://127.0.0.1:{receiver.port}/hooks/***?***" in log
