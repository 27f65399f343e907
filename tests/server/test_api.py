"""The HTTP API over real HTTP: repositories, workflows, diff, sync, rollback, history, resources."""

from __future__ import annotations

import getpass
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gitservers import commit, make_repo, push
from tests.manifests import configmap, deployment, dump

from .conftest import SlipwayServer, wait_until

pytestmark = pytest.mark.cluster


def setup_workflow(
    server: SlipwayServer, tmp_path: Path, namespace: str, files: dict[str, str], **options: Any
) -> tuple[str, Path]:
    """A repository and a workflow registered through the API (as admin); returns (workflow id, work tree)."""
    work = make_repo(tmp_path / f"repo-{namespace}", files)
    admin = server.client("admin")
    r = admin.post(
        "/api/v1/repositories", json={"id": f"r-{namespace}"[:60], "url": str(work.with_name(work.name + ".git"))}
    )
    assert r.status_code == 201, r.text
    policy = options.pop("sync_policy", {})
    body = {
        "id": f"w-{namespace}"[:60],
        "repository": r.json()["id"],
        "target_path": "k8s",
        "destination": {"namespace": namespace},
        "sync_policy": {"health_check": {"timeout": "60s"}, **policy},
        **options,
    }
    r = admin.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"], work


def finish(server: SlipwayServer, sync_id: str, timeout: float = 90) -> dict[str, Any]:
    viewer = server.client("viewer")
    return wait_until(lambda: (v := viewer.get(f"/api/v1/syncs/{sync_id}").json())["done"] and v, timeout, step=0.2)


def test_register_sync_status_history_and_rollback(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, work = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    viewer, operator = server.client("viewer"), server.client("operator")

    # diff: exactly the seed's generate_diff table (plus what a client needs to sync that plan)
    d = operator.get(f"/api/v1/workflows/{wf}/diff")
    assert d.status_code == 200, d.text
    plan = d.json()
    assert set(plan) == {"workflow_id", "generated_at", "summary", "changes", "conflicts", "warnings", "hooks",
                         "revision", "fingerprint", "computed"}  # fmt: skip
    assert plan["summary"]["created_resources"] == 1 and plan["changes"][0]["resource"] == "ConfigMap/app"

    # sync: 202 with its id at once, then followed by that id to its recorded result
    r = operator.post(f"/api/v1/workflows/{wf}/sync", json={"expected_plan": plan["fingerprint"]})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/v1/syncs/{r.json()['id']}"
    assert r.json()["status"] in ("running", "succeeded")
    done = finish(server, r.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["actor"].startswith("token:operator-")
    assert done["result"]["metrics"]["resources_applied"] == 1
    assert done["progress"]["objects_total"] == 1 and done["progress"]["objects_applied"] == 1

    # status: the seed's get_workflow_status table, with the config and live state beside it
    st = viewer.get(f"/api/v1/workflows/{wf}").json()
    assert st["status"] == "synced" and st["last_sync_result"]["id"] == r.json()["id"]
    assert set(st["last_sync_result"]) == {"id", "status", "start_time", "commit_hash", "message", "metrics"}
    assert st["config"]["destination"]["namespace"] == namespace
    assert [w["id"] for w in viewer.get("/api/v1/workflows").json()] == [wf]

    # resources: every declared object with its sync state and health (planned: an operator's)
    res = operator.get(f"/api/v1/workflows/{wf}/resources").json()["resources"]
    assert [(x["resource"], x["sync"], x["health"]["status"]) for x in res] == [("ConfigMap/app", "Synced", "Healthy")]

    # a second commit, synced, then rolled back with a reason; the history names who asked
    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"}), configmap("extra"))})
    push(work)
    res = operator.get(f"/api/v1/workflows/{wf}/resources").json()["resources"]
    assert {(x["resource"], x["sync"], x["action"]) for x in res} == {
        ("ConfigMap/app", "OutOfSync", "update"), ("ConfigMap/extra", "OutOfSync", "create")}  # fmt: skip
    second = finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert second["status"] == "succeeded"
    r = operator.post(f"/api/v1/workflows/{wf}/rollback", json={})
    assert r.status_code == 400 and "reason" in r.json()["error"]
    r = operator.post(f"/api/v1/workflows/{wf}/rollback", json={"reason": "v2 breaks checkout"})
    assert r.status_code == 202, r.text
    rb = finish(server, r.json()["id"])
    assert rb["status"] == "succeeded" and rb["kind"] == "rollback" and rb["result"]["reason"] == "v2 breaks checkout"
    history = viewer.get(f"/api/v1/workflows/{wf}/history").json()
    assert [(h["kind"], h["status"]) for h in history] == [("rollback", "succeeded"), ("sync", "succeeded"),
                                                           ("sync", "succeeded")]  # fmt: skip
    assert {h["actor"] for h in history} == {done["result"]["actor"]}


def test_a_sync_while_another_holds_the_workflow_is_409(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, _ = setup_workflow(
        server,
        tmp_path,
        namespace,
        {"k8s/app.yaml": dump(configmap("app"))},
        sync_policy={"pre_sync_hooks": ["sleep 4"]},
    )
    operator = server.client("operator")
    first = operator.post(f"/api/v1/workflows/{wf}/sync")
    assert first.status_code == 202
    second = operator.post(f"/api/v1/workflows/{wf}/sync")
    assert second.status_code == 409, second.text
    assert "sync in progress" in second.json()["error"] and first.json()["id"] in second.json()["error"]
    rollback = operator.post(f"/api/v1/workflows/{wf}/rollback", json={"reason": "now"})
    assert rollback.status_code == 409
    progress = wait_until(
        lambda: (
            (v := operator.get(f"/api/v1/syncs/{first.json()['id']}").json())["progress"]["stage"] == "pre-hooks" and v
        ),
        20,
    )
    assert progress["status"] == "running" and not progress["done"]
    assert finish(server, first.json()["id"])["status"] == "succeeded"
    assert len(operator.get(f"/api/v1/workflows/{wf}/history").json()) == 1  # the refused ones left no record


def test_bad_input_is_a_4xx_json_error_and_changes_nothing(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    admin = server.client("admin")
    cases = [
        ("POST", "/api/v1/repositories", {"url": "https://git.example.com/x.git", "brnach": "main"}, 400, "brnach"),
        ("POST", "/api/v1/repositories", {"url": 5}, 400, "url"),
        ("POST", "/api/v1/repositories", ["not", "a", "table"], 422, "body"),
        ("POST", "/api/v1/workflows", {"repository": "nope"}, 404, "nope"),
        ("POST", "/api/v1/workflows", {"id": "x y", "repository": "nope"}, 400, "id"),
        ("GET", "/api/v1/workflows/missing", None, 404, "missing"),
        ("GET", "/api/v1/workflows/missing/diff", None, 404, "missing"),
        ("POST", "/api/v1/workflows/missing/sync", None, 404, "missing"),
        ("POST", "/api/v1/workflows/missing/sync", {"revison": "abc"}, 400, "revison"),
        ("GET", "/api/v1/workflows/missing/history?limit=0", None, 422, "limit"),
        ("GET", "/api/v1/syncs/sync-0-000000000000", None, 404, "sync"),
        ("DELETE", "/api/v1/repositories/missing", None, 404, "missing"),
        ("POST", "/api/v1/tokens", {"name": "ci", "role": "root"}, 400, "role"),
        ("PATCH", "/api/v1/workflows/missing", {}, 400, "nothing to change"),
    ]
    for method, path, body, status, word in cases:
        r = admin.request(method, path, json=body)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        assert r.json()["status"] == status and word in r.json()["error"], (path, r.json())
    r = admin.post("/api/v1/repositories", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    r = admin.post(
        "/api/v1/repositories", content=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "too large" in r.json()["error"]
    assert admin.get("/api/v1/repositories").json() == []
    assert admin.get("/api/v1/workflows").json() == []
    # a repository still in use cannot be removed
    repo = admin.post("/api/v1/repositories", json={"id": "used", "url": "https://git.example.com/x.git"})
    assert repo.status_code == 201
    assert admin.post("/api/v1/workflows", json={"id": "w1", "repository": "used"}).status_code == 201
    assert admin.post("/api/v1/workflows", json={"id": "w1", "repository": "used"}).status_code == 409
    r = admin.delete("/api/v1/repositories/used")
    assert r.status_code == 409 and "w1" in r.json()["error"]


def test_credentials_and_notify_urls_never_come_back(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    admin = server.client("admin")
    secret, hook_token = "ghp_" + "s3cr3t" * 6, "T0KEN" * 6
    r = admin.post("/api/v1/repositories", json={
        "id": "private", "url": "https://git.example.com/team/app.git",
        "credentials": {"type": "token", "token": secret}})  # fmt: skip
    assert r.status_code == 201 and r.json()["credentials"] == {"type": "token", "username": "x-access-token"}
    notify = {"url": f"https://hooks.example.com/services/{hook_token}?key={hook_token}", "events": ["failed"]}
    r = admin.post("/api/v1/workflows", json={"id": "app", "repository": "private", "notify": notify})
    assert r.status_code == 201, r.text
    assert r.json()["notify"] == {"url": "https://hooks.example.com/services/***?***", "events": ["failed"]}
    r = admin.patch("/api/v1/workflows/app", json={"notify": {"events": ["failed", "succeeded"]}})
    assert r.status_code == 200 and r.json()["changed"] == ["notify.events"]
    bodies = [admin.get(p).text for p in ("/api/v1/repositories", "/api/v1/repositories/private", "/api/v1/workflows",
                                          "/api/v1/workflows/app")]  # fmt: skip
    assert all(secret not in b and hook_token not in b for b in bodies)
    # a masked URL sent back is refused, not stored
    r = admin.patch("/api/v1/workflows/app", json={"notify": {"url": "https://hooks.example.com/services/***"}})
    assert r.status_code == 400 and "masked" in r.json()["error"]
    wf = server.engine().workflow("app")
    assert wf.notify is not None and wf.notify.url == notify["url"] and wf.notify.events == ["failed", "succeeded"]


def test_health_of_resources_reflects_the_cluster(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    stuck = deployment("stuck", 1, progressDeadlineSeconds=2, pod={"nodeSelector": {"no-such-node": "x"}})
    wf, _ = setup_workflow(
        server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("cfg"), stuck)},
        sync_policy={"health_check": {"timeout": "5s"}},
    )  # fmt: skip
    result = finish(server, server.client("operator").post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert result["status"] == "failed" and "health check failed" in result["result"]["message"]
    started = time.monotonic()
    res = {
        x["resource"]: x for x in server.client("operator").get(f"/api/v1/workflows/{wf}/resources").json()["resources"]
    }
    assert time.monotonic() - started < 30
    assert res["ConfigMap/cfg"]["health"]["status"] == "Healthy"
    assert res["Deployment/stuck"]["health"]["status"] in ("Degraded", "Progressing")
    assert res["Deployment/stuck"]["sync"] == "Synced"


def test_the_cli_records_the_os_user_and_history_shows_who(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, _ = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app"))})
    assert finish(server, server.client("operator").post(f"/api/v1/workflows/{wf}/sync").json()["id"])["done"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "slipway", *args], env={**server.env, "COLUMNS": "250"},
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip

    r = cli("rollback", wf, "--reason", "by hand")
    assert r.returncode in (0, 1), r.stderr
    history = server.client("viewer").get(f"/api/v1/workflows/{wf}/history").json()
    assert [h["actor"] for h in history][:1] == [f"user:{getpass.getuser()}"]
    assert history[1]["actor"].startswith("token:operator-")
    table = cli("history", wf).stdout
    assert "BY" in table and f"user:{getpass.getuser()}" in table and "token:operator-" in table
