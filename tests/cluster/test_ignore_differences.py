"""sync_policy.ignore_differences: a field another manager owns (an HPA's replicas) is left to it, and
self-heal does not fight it. The other manager is a second field manager applying spec.replicas
with server-side apply, as an autoscaler's controller owns it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from slipway.controller import Controller
from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import deployment, dump
from .test_controller import auto_workflow, wait_until

pytestmark = pytest.mark.cluster

HPA = "hpa-like-autoscaler"


def scale(kube: Kube, namespace: str, replicas: int) -> None:
    """What an autoscaler does: own spec.replicas with its own field manager."""
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": replicas}}  # fmt: skip
    kube.apply(kube.discovery.lookup("apps/v1", "Deployment"), body, field_manager=HPA, force=True)


def live(kube: Kube, namespace: str) -> dict[str, Any]:
    return kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web") or {}


def owners(obj: dict[str, Any], field: str) -> set[str]:
    return {m["manager"] for m in obj["metadata"]["managedFields"] if field in str(m.get("fieldsV1", {}).get("f:spec"))}


@pytest.mark.parametrize(
    "rule",
    [
        {"group": "apps", "kind": "Deployment", "json_pointers": ["/spec/replicas"]},
        {"group": "apps", "kind": "Deployment", "name": "web", "managed_fields_managers": [HPA]},
    ],
    ids=["json_pointers", "managed_fields_managers"],
)
def test_an_hpa_keeps_replicas_and_self_heal_leaves_them(
    engine: Engine, kube: Kube, make_git, namespace: str, rule: dict[str, Any]
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(deployment("web", 2))})
    policy = {"self_heal": True, "self_heal_interval": "1s", "ignore_differences": [rule],
              "health_check": {"enabled": False}}  # fmt: skip
    wf = auto_workflow(engine, repo, namespace, poll="1s", sync_policy=policy)
    assert engine.sync(wf).status == "succeeded"
    assert live(kube, namespace)["spec"]["replicas"] == 2  # a new object starts with Git's value

    scale(kube, namespace, 5)
    plan = engine.plan(wf)
    assert plan.changes == [] and plan.conflicts == []  # not changed, not drifted, not shown
    controller = Controller(engine, tick=0.1)
    controller.start()
    try:
        time.sleep(4)  # four self-heal intervals
        assert live(kube, namespace)["spec"]["replicas"] == 5
        assert not any(h.trigger == "self-heal" for h in engine.history(wf))

        # A change in Git is applied, and replicas are not sent: the autoscaler keeps them.
        repo.commit({"k8s/a.yaml": dump(deployment("web", 2, image="registry.invalid/app:2"))})
        image = lambda: live(kube, namespace)["spec"]["template"]["spec"]["containers"][0]["image"]  # noqa: E731
        wait_until(lambda: image() == "registry.invalid/app:2", 30)
    finally:
        controller.stop(10)
    after = live(kube, namespace)
    assert after["spec"]["replicas"] == 5
    assert owners(after, "f:replicas") == {HPA}
    diff = engine.plan(wf).to_seed()
    assert diff["changes"] == [] and "replicas" not in str(diff)


def test_without_the_rule_self_heal_restores_git(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(deployment("web", 2))})
    policy = {"self_heal": True, "self_heal_interval": "1s", "health_check": {"enabled": False}}
    wf = auto_workflow(engine, repo, namespace, poll="1s", sync_policy=policy)
    assert engine.sync(wf).status == "succeeded"
    scale(kube, namespace, 5)
    (change,) = engine.plan(wf).changes
    assert change.drifted and "spec.replicas: 5 -> 2" in change.diff
    controller = Controller(engine, tick=0.1)
    controller.start()
    try:
        wait_until(lambda: live(kube, namespace)["spec"]["replicas"] == 2, 20)
    finally:
        controller.stop(10)
    assert any(h.trigger == "self-heal" for h in engine.history(wf))


def test_a_field_slipway_still_owns_alone_is_not_reset(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    # Leaving out a field server-side apply gave slipway alone would reset it to its default (1).
    repo = make_git({"k8s/a.yaml": dump(deployment("web", 3))})
    rule = {"group": "apps", "kind": "Deployment", "json_pointers": ["/spec/replicas"]}
    wf = auto_workflow(engine, repo, namespace, sync_policy={"ignore_differences": [rule],
                                                             "health_check": {"enabled": False}})  # fmt: skip
    assert engine.sync(wf).status == "succeeded"
    repo.commit({"k8s/a.yaml": dump(deployment("web", 3, image="registry.invalid/app:2"))})
    assert engine.sync(wf).status == "succeeded"
    assert live(kube, namespace)["spec"]["replicas"] == 3
