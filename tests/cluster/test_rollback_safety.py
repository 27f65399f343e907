"""A rollback holds, and restores what slipway applied: regression tests on the real cluster.

Self-heal meeting a rollback must restore the rolled-back-to revision, not the branch head; a
rollback done by hand between the controller's look and its sync must win; and restoring an
object from a backup restores slipway's own fields only — never a Job's generated selector nor a
Service's clusterIP — so restoring a Job works.
"""

from __future__ import annotations

from typing import Any

import pytest

from slipway.controller import Controller
from slipway.engine import Engine
from slipway.errors import HeldBack
from slipway.kube import Kube

from .conftest import BOTH_BACKENDS, add_workflow, configmap, dump, service
from .test_controller import auto_workflow, cm_value, wait_until

# Both stores keep the backups, inventories and holds these rely on.
pytestmark = BOTH_BACKENDS


def get(kube: Kube, kind: str, namespace: str, name: str, api_version: str = "v1") -> dict[str, Any] | None:
    return kube.get(kube.discovery.lookup(api_version, kind), namespace, name)


def job(name: str, args: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "m", "image": "registry.invalid/m:1", "args": args}]}},
        },
    }  # fmt: skip


def test_self_heal_after_a_rollback_restores_the_rolled_back_revision_and_keeps_the_hold(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
    wf = auto_workflow(engine, repo, namespace, poll="1h", sync_policy={"self_heal": True, "self_heal_interval": "1s"})
    v1 = engine.sync(wf)
    v2 = repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
    assert engine.sync(wf).commit_hash == v2
    assert engine.rollback(wf, "v2 is broken").status == "succeeded"
    assert cm_value(kube, namespace, "app") == "1"

    kube.apply(kube.discovery.lookup("v1", "ConfigMap"), configmap("app", {"v": "edited"}, namespace=namespace),
               field_manager="kubectl-edit", force=True)  # fmt: skip
    ctl = Controller(engine, tick=0.1)
    ctl.start()
    try:
        wait_until(lambda: any(h.trigger == "self-heal" for h in engine.history(wf)), 30, step=0.2)
        wait_until(lambda: engine.run_state(wf)["sync_owner"] is None, 30)
    finally:
        ctl.stop(10)
    assert cm_value(kube, namespace, "app") == "1"  # the revision rolled back to, never the branch's head
    heal = next(h for h in engine.history(wf) if h.trigger == "self-heal")
    assert heal.status == "succeeded" and heal.commit_hash == v1.commit_hash
    state = engine.run_state(wf)
    assert state["hold_revision"] == v2 and state["applied_revision"] == v1.commit_hash


def test_a_rollback_between_the_controllers_look_and_its_sync_wins(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
    wf = auto_workflow(engine, repo, namespace, poll="1h")
    engine.sync(wf)
    v2 = repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
    engine.sync(wf)
    # The controller saw head v2 and decided to sync it; before it claims the workflow, a person
    # rolls back from v2. Its sync of v2, once it holds the claim, must step aside.
    assert engine.rollback(wf, "by hand").status == "succeeded"
    before = len(engine.history(wf))
    with pytest.raises(HeldBack, match="waits for a newer commit"):
        engine.sync(wf, trigger="auto", revision=v2)
    assert len(engine.history(wf)) == before and cm_value(kube, namespace, "app") == "1"
    assert engine.run_state(wf)["hold_revision"] == v2
    # A person may still sync it on purpose, which ends the hold.
    assert engine.sync(wf, revision=v2).status == "succeeded"
    assert engine.run_state(wf)["hold_revision"] is None


def test_a_rollback_restores_a_job_and_a_service_from_what_slipway_applied(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    objs = [job("migrate", ["--step", "1"]), service("web"), configmap("app")]
    repo = make_git({"k8s/a.yaml": dump(*objs)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"health_check": {"enabled": False}})
    assert engine.sync(wf).status == "succeeded"
    # v2 stops declaring them (prune off: they stay, still owned); then prune takes them.
    repo.commit({"k8s/a.yaml": dump(configmap("app"))})
    v2 = engine.sync(wf)
    assert v2.status == "succeeded"
    engine.update_workflow(wf, {"sync_policy": {"auto_prune": True}})
    v3 = engine.sync(wf)
    assert v3.status == "succeeded" and v3.metrics.resources_deleted == 2
    backups = {ref.kind: obj for ref, _, _, obj in engine.store.sync_objects(v3.id, "backup")}
    assert "selector" not in backups["Job"]["spec"] and "controller-uid" not in str(backups["Job"])
    assert "clusterIP" not in backups["Service"]["spec"]

    # Rolling v3 back restores both from its backups, which a raw live object could not do for the Job.
    rb = engine.rollback(wf, "the migration was still needed")
    assert rb.status == "succeeded", rb.message
    restored = get(kube, "Job", namespace, "migrate", "batch/v1") or {}
    assert restored["spec"]["template"]["spec"]["containers"][0]["args"] == ["--step", "1"]
    svc = get(kube, "Service", namespace, "web") or {}
    managed = next(m for m in svc["metadata"]["managedFields"] if m["manager"] == "slipway")
    assert "f:clusterIP" not in str(managed["fieldsV1"])  # the server chose the address, not a pinned old one
    assert svc["spec"]["clusterIP"]
