"""The two axes (sync status against Git, health of the live objects) and the last operation, the same
on every surface: the API's workflow route (computes), the list the overview reads (as last computed),
``/metrics``, and the CLI's ``workflow status``, ``workflow get`` and ``workflow list`` on the same store.

Each case changes the cluster or Git the way a user does (a hand deletion, a hand edit, a commit to
another path, a rollback) and then asks every surface.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slipway.kube import Kube
from tests.gitservers import commit, push
from tests.manifests import configmap, deployment, dump

from .conftest import SlipwayServer
from .test_api import finish, setup_workflow
from .test_events_metrics import metrics, value

pytestmark = pytest.mark.cluster


def cli(server: SlipwayServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slipway", *args], env=server.env, capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)  # fmt: skip


def cli_json(server: SlipwayServer, *args: str) -> Any:
    r = cli(server, "-o", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def surfaces(server: SlipwayServer, wf: str) -> dict[str, tuple[str, str]]:
    """(sync status, health) as each surface says it; the API's workflow route computes first (for
    an operator: a viewer reads what was last computed)."""
    viewer = server.client("viewer")
    got = server.client("operator").get(f"/api/v1/workflows/{wf}").json()
    out = {"api": (got["sync_status"]["status"], got["health"]["status"])}
    (listed,) = [w for w in viewer.get("/api/v1/workflows?live=true").json() if w["id"] == wf]
    out["overview"] = (listed["sync_status"]["status"], listed["health"]["status"])
    m = metrics(server)
    sync = [
        s
        for s in ("Synced", "OutOfSync", "Unknown")
        if value(m, "slipway_workflow_sync_status", workflow=wf, sync_status=s) == 1
    ]
    health = [h for h in ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
              if value(m, "slipway_workflow_health", workflow=wf, health=h) == 1]  # fmt: skip
    out["metrics"] = (sync[0] if len(sync) == 1 else repr(sync), health[0] if len(health) == 1 else repr(health))
    status = cli_json(server, "workflow", "status", wf)
    out["cli status"] = (status["sync_status"]["status"], status["health"]["status"])
    (row,) = [w for w in cli_json(server, "workflow", "list") if w["id"] == wf]
    out["cli list"] = (row["sync_status"]["status"], row["health"]["status"])
    got_cli = cli_json(server, "workflow", "get", wf)["workflow"]
    out["cli get"] = (got_cli["sync_status"]["status"], got_cli["health"]["status"])
    return out


def agree(server: SlipwayServer, wf: str, want: tuple[str, str]) -> None:
    seen = surfaces(server, wf)
    assert all(v == want for v in seen.values()), seen


def test_a_hand_deletion_and_a_hand_edit_are_out_of_sync_on_every_surface(
    start_server, tmp_path: Path, namespace: str, kube: Kube
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, _ = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("a"), configmap("b"))})
    operator = server.client("operator")
    done = finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert done["status"] == "succeeded"
    agree(server, wf, ("Synced", "Healthy"))

    cms = kube.discovery.lookup("v1", "ConfigMap")
    kube.delete(cms, namespace, "b")
    agree(server, wf, ("OutOfSync", "Missing"))
    got = cli_json(server, "workflow", "get", wf)
    assert got["workflow"]["sync_status"] | {"message": ""} == {
        "status": "OutOfSync", "created": 0, "changed": 0, "missing": 1, "extra": 0,
        "revision": got["workflow"]["sync_status"]["revision"], "message": ""}  # fmt: skip
    objects = {o["name"]: (o["kind"], o["sync_status"], o["health"]["status"]) for o in got["objects"]}
    assert objects == {"a": ("ConfigMap", "Synced", "Healthy"), "b": ("ConfigMap", "Missing", "Missing")}
    assert got["workflow"]["operation"]["phase"] == "Succeeded" and got["workflow"]["operation"]["kind"] == "sync"
    text = cli(server, "workflow", "get", wf).stdout
    assert "OutOfSync (1 missing)" in text and "Missing" in text, text

    finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    agree(server, wf, ("Synced", "Healthy"))
    live = kube.get(cms, namespace, "a")
    assert live is not None
    kube.apply(cms, {**configmap("a", {"k": "edited by hand"}), "metadata": {"name": "a", "namespace": namespace}},
               field_manager="kubectl", force=True)  # fmt: skip
    agree(server, wf, ("OutOfSync", "Healthy"))
    status = cli_json(server, "workflow", "status", wf)
    assert (status["sync_status"]["changed"], status["sync_status"]["missing"]) == (1, 0)


def test_a_commit_elsewhere_is_not_news_and_a_rollback_is_out_of_sync(
    start_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    files = {"k8s/app.yaml": dump(configmap("a")), "other/x.yaml": dump(configmap("x"))}
    wf, work = setup_workflow(server, tmp_path, namespace, files)
    operator = server.client("operator")
    first = finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert first["status"] == "succeeded"

    commit(work, {"other/x.yaml": dump(configmap("x", {"k": "2"}))})
    push(work)
    (row,) = cli_json(server, "workflow", "list")
    assert row["live_revision"] != row["branch_head"]  # the branch moved...
    assert row["out_of_date"] is False and row["sync_status"]["status"] == "Synced", row  # ...not for this path
    assert "behind Git" not in cli(server, "workflow", "list").stdout
    agree(server, wf, ("Synced", "Healthy"))

    commit(work, {"k8s/app.yaml": dump(configmap("a", {"k": "3"}))})
    push(work)
    (row,) = cli_json(server, "workflow", "list")
    assert row["out_of_date"] is True and row["sync_status"]["status"] == "OutOfSync", row
    assert row["sync_status"]["changed"] == 1
    second = finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert second["status"] == "succeeded"
    agree(server, wf, ("Synced", "Healthy"))

    rb = finish(server, operator.post(f"/api/v1/workflows/{wf}/rollback", json={"reason": "test"}).json()["id"])
    assert rb["status"] == "succeeded", rb
    agree(server, wf, ("OutOfSync", "Healthy"))  # live is the old revision: Git says otherwise
    op = cli_json(server, "workflow", "status", wf)["operation"]
    assert (op["kind"], op["phase"]) == ("rollback", "Succeeded")


def test_a_refusal_is_counted_as_its_own_outcome(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    wf, work = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("a"))})
    operator = server.client("operator")
    assert finish(server, operator.post(f"/api/v1/workflows/{wf}/sync").json()["id"])["status"] == "succeeded"
    shown = operator.get(f"/api/v1/workflows/{wf}/diff").json()["fingerprint"]
    commit(work, {"k8s/app.yaml": dump(configmap("a", {"k": "2"}))})
    push(work)
    r = operator.post(f"/api/v1/workflows/{wf}/sync", json={"expected_plan": shown})
    done = finish(server, r.json()["id"])
    assert done["status"] == "refused" and "plan changed" in done["result"]["message"], done
    m = metrics(server)
    assert value(m, "slipway_sync_total", workflow=wf, status="refused") == 1
    assert value(m, "slipway_sync_total", workflow=wf, status="failed") is None
    assert value(m, "slipway_workflow_status", workflow=wf, status="synced") == 1  # as it was: nothing applied
    got = server.client("operator").get(f"/api/v1/workflows/{wf}").json()
    assert got["status"] == "synced" and got["operation"]["phase"] == "Refused"
    assert got["sync_status"]["status"] == "OutOfSync" and got["sync_status"]["changed"] == 1
    agree(server, wf, ("OutOfSync", "Healthy"))


def test_a_sync_applied_in_full_and_still_progressing_on_every_surface(
    start_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    stuck = deployment("stuck", pod={"nodeSelector": {"no-such-node": "x"}})  # applied at once, never available
    server = start_server()
    wf, _ = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("a"), stuck)},
                           sync_policy={"health_check": {"timeout": "3s"}})  # fmt: skip
    done = finish(server, server.client("operator").post(f"/api/v1/workflows/{wf}/sync").json()["id"])
    assert done["status"] == "failed" and "health" in done["result"]["message"]  # failure_mode "fail"
    agree(server, wf, ("Synced", "Progressing"))  # yet applied in full: Git's revision is what runs
    got = server.client("viewer").get(f"/api/v1/workflows/{wf}").json()
    assert got["live_state"]["applied_revision"] == done["result"]["commit_hash"]
    assert got["operation"]["phase"] == "Failed" and "Deployment/" in got["health"]["message"]
