"""A sync checks new objects against the API server's published schemas instead of a dry-run each:
one request per new object, and still nothing applied when the plan would fail validation."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import add_workflow, configmap, deployment, dump, service

pytestmark = pytest.mark.cluster


def spent(kube: Kube, before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in kube.counts.items() if v - before.get(k, 0)}


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {"k": "dmFsdWU="}}


def test_a_first_sync_sends_one_request_per_new_object(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    objs = [configmap("c1"), configmap("c2"), secret("s"), service("web"), deployment("web")]
    wf = add_workflow(engine, make_git({"k8s/a.yaml": dump(*objs)}), namespace,
                      sync_policy={"health_check": {"enabled": False}})  # fmt: skip
    kube = engine.kube_for(engine.workflow(wf))
    kube.discovery.ensure()  # discovery and the schemas are read once per server; not this test's point
    kube.openapi.schema("", "v1", "ConfigMap")
    kube.openapi.schema("apps", "v1", "Deployment")
    before = dict(kube.counts)
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    used = spent(kube, before)
    assert used.get("DRYRUN", 0) == 0 and used["PATCH"] == len(objs), used
    # Reads: a LIST per kind (by the workflow's label), one metadata LIST per kind where something is
    # missing, the namespace, and the OpenAPI index; never a read per object.
    assert used["GET"] <= 2 * 4 + 2, used


def test_what_fails_the_schema_is_refused_with_the_servers_words_and_nothing_is_applied(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    bad_type = deployment("three")
    bad_type["spec"]["replicas"] = "three"
    no_image = deployment("no-image")
    del no_image["spec"]["template"]["spec"]["containers"][0]["image"]
    wrong_selector = deployment("selector")
    wrong_selector["spec"]["selector"]["matchLabels"] = {"app": "other"}
    unknown_field = service("web")
    unknown_field["spec"]["portz"] = [{"port": 80}]
    repo = make_git({"k8s/a.yaml": dump(configmap("fine"), bad_type, no_image, wrong_selector, unknown_field)})
    wf = add_workflow(engine, repo, namespace)
    result = engine.sync(wf)
    assert result.status == "failed" and "nothing was applied" in result.message
    assert result.metrics.resources_applied == 0
    assert kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "fine") is None
    plan = engine.plan(wf, local_checks=True)
    described = {c.resource: c.description for c in plan.conflicts}
    assert set(described) == {"Deployment/three", "Deployment/no-image", "Deployment/selector", "Service/web"}
    # The server's own message for each: the local check asked it before refusing anything.
    assert "API server says" in described["Deployment/three"] and "replicas" in described["Deployment/three"]
    assert "image: Required value" in described["Deployment/no-image"]
    assert "selector" in described["Deployment/selector"]
    assert "portz" in described["Service/web"]
    assert all(d.startswith("k8s/a.yaml, document ") for d in described.values())


def test_a_namespace_that_does_not_exist_is_a_validation_conflict(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    elsewhere = configmap("x", namespace="no-such-namespace-slipway")
    wf = add_workflow(engine, make_git({"k8s/a.yaml": dump(configmap("here"), elsewhere)}), namespace)
    plan = engine.plan(wf, local_checks=True)
    (conflict,) = plan.conflicts
    assert conflict.resource == "ConfigMap/x" and "not found" in conflict.description
    assert any("create_namespace" in tip for tip in conflict.suggestions)


def test_a_custom_resource_is_checked_against_the_crd_of_the_same_render(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    group = f"{namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "required": ["size"],
                                        "properties": {"size": {"type": "integer", "maximum": 5}}}},
            }}}],
        },
    }  # fmt: skip
    gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"size": 9}}
    wf = add_workflow(engine, make_git({"k8s/a.yaml": dump(crd, gadget)}), namespace)
    result = engine.sync(wf)
    assert result.status == "failed" and "nothing was applied" in result.message, result.message
    assert "spec.size: 9 is more than the maximum 5" in result.message
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert kube.get(crds, "", f"gadgets.{group}") is None


def test_what_only_the_server_refuses_stops_the_sync_there_and_rolls_back(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    # A quota is the server's to enforce: no schema says how many ConfigMaps a namespace may hold.
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": namespace},
             "spec": {"hard": {"configmaps": "3"}}}  # fmt: skip
    kube.apply(kube.discovery.lookup("v1", "ResourceQuota"), quota, field_manager="tests")
    objs = [service("web"), *(configmap(f"c{i}") for i in range(5))]
    wf = add_workflow(engine, make_git({"k8s/a.yaml": dump(*objs)}), namespace, rollback_on_failure=True,
                      sync_policy={"health_check": {"enabled": False}})  # fmt: skip
    assert engine.plan(wf, local_checks=True).conflicts == []  # nothing the schemas can see
    result = engine.sync(wf)
    assert result.status == "failed" and "exceeded quota" in result.message, result.message
    assert result.rolled_back and "rolled back" in result.message
    cms = kube.discovery.lookup("v1", "ConfigMap")
    assert [kube.get(cms, namespace, f"c{i}") for i in range(5)] == [None] * 5
    assert kube.get(kube.discovery.lookup("v1", "Service"), namespace, "web") is None
