"""The event stream seen during syncs, and /metrics parsed by Prometheus's own parser."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gitservers import commit, push
from tests.manifests import configmap, dump

from .conftest import SlipwayServer, wait_until
from .test_api import finish, setup_workflow

pytestmark = pytest.mark.cluster


class Listener:
    """Reads /api/v1/events in a thread of its own, as a dashboard would."""

    def __init__(self, server: SlipwayServer, query: str = "") -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.connected = threading.Event()
        self.client = server.client("viewer", timeout=None)
        self.thread = threading.Thread(target=self._read, args=(query,), daemon=True)
        self.thread.start()
        assert self.connected.wait(20)

    def _read(self, query: str) -> None:
        event = None
        try:
            with self.client.stream("GET", f"/api/v1/events{query}") as r:
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event:
                        self.events.append((event, json.loads(line.split(":", 1)[1])))
                        if event == "hello":
                            self.connected.set()
        except Exception:
            pass  # closed at the end of the test

    def names(self, sync_id: str) -> list[str]:
        return [e for e, d in self.events if d.get("sync_id") == sync_id]

    def close(self) -> None:
        self.client.close()


def test_the_event_stream_shows_a_sync_and_a_moved_branch(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    files = {"k8s/app.yaml": dump(configmap("a"), configmap("b"))}
    wf, work = setup_workflow(server, tmp_path, namespace, files, sync_policy={"pre_sync_hooks": ["true"]})
    listener = Listener(server)
    only_other = Listener(server, "?workflow=someone-else")
    try:
        sync_id = server.client("operator").post(f"/api/v1/workflows/{wf}/sync").json()["id"]
        wait_until(lambda: "finished" in listener.names(sync_id), 60)
        names = listener.names(sync_id)
        assert names[0] == "started" and names[-1] == "finished"
        assert {"planned", "stage", "applied", "hook", "health"} <= set(names)
        assert names.count("applied") == 2
        mine = [d for e, d in listener.events if d.get("sync_id") == sync_id]
        assert all(d["workflow"] == wf for d in mine)
        assert next(d for e, d in listener.events if e == "finished")["status"] == "succeeded"

        # the controller sees the branch move and says which workflows follow it
        server.client("admin").patch(f"/api/v1/workflows/{wf}", json={"auto_sync": True})
        server.client("admin").post("/api/v1/repositories", json={"id": f"r-{namespace}"[:60], "url": str(
            work.with_name(work.name + ".git")), "poll_interval": "1s"})  # fmt: skip
        sha = commit(work, {"k8s/app.yaml": dump(configmap("a", {"v": "2"}), configmap("b"))})
        push(work)
        moved = wait_until(lambda: [d for e, d in listener.events if e == "repository" and d["revision"] == sha], 30)
        assert moved[0]["workflows"] == [wf]
        auto = wait_until(lambda: [d for e, d in listener.events if e == "started" and d["trigger"] == "auto"], 30)
        wait_until(lambda: "finished" in listener.names(auto[0]["sync_id"]), 60)
        assert [e for e, _ in only_other.events] == ["hello"]  # the filtered stream saw none of it
    finally:
        listener.close()
        only_other.close()


def metrics(server: SlipwayServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = server.client().get("/metrics").text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    for got, v in samples.get(name, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def test_metrics_after_syncs(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, _ = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("a"), configmap("b"))})
    operator = server.client("operator")
    assert finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])["status"] == "succeeded"
    before = metrics(server)
    assert all(name.startswith("slipway_") for name in before)
    assert value(before, "slipway_sync_total", workflow=wf, status="succeeded") == 1
    assert value(before, "slipway_sync_duration_seconds_count", workflow=wf) == 1
    assert value(before, "slipway_git_fetch_duration_seconds_count") == 1
    assert value(before, "slipway_workflow_status", workflow=wf, status="synced") == 1
    assert value(before, "slipway_workflow_status", workflow=wf, status="failed") == 0
    assert value(before, "slipway_workflow_health", workflow=wf, health="Healthy") == 1
    assert value(before, "slipway_workflow_objects", workflow=wf) == 2
    assert value(before, "slipway_objects_applied_total", workflow=wf) == 2
    assert value(before, "slipway_controller_queue_depth") == 0
    route = "/api/v1/workflows/{workflow_id}/sync"
    assert value(before, "slipway_api_requests_total", method="POST", route=route, status="202") == 1
    # a route template, never a raw path: label values stay bounded
    assert not [labels for labels, _ in before["slipway_api_requests_total"] if wf in labels["route"]]

    # a sync that fails (the cluster refuses the object) is counted as failed
    server.client("admin").patch(f"/api/v1/workflows/{wf}", json={"target_path": "missing"})
    result = finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert result["status"] == "failed"
    after = metrics(server)
    assert value(after, "slipway_sync_total", workflow=wf, status="failed") == 1
    assert value(after, "slipway_sync_total", workflow=wf, status="succeeded") == 1
    assert value(after, "slipway_workflow_status", workflow=wf, status="failed") == 1
    assert value(after, "slipway_api_requests_total", method="POST", route=route, status="202") == 2
