"""Health scripts in Argo CD's format decide a real sync: a CRD, its custom resource, and a test controller that
writes the resource's status through the status subresource, as an operator does."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.health import customizations
from slipway.kube import Kube
from slipway.store.kubernetes import KubernetesStore

from .conftest import add_workflow, dump

pytestmark = pytest.mark.cluster

GROUP = "health27.slipway-tests.example"
KIND = "HealthGadget"
PLURAL = "healthgadgets"  # no other test uses it

# Argo CD's shape: the script sees obj, returns {status=..., message=...}; it keeps the controller's words.
SCRIPT = """
local hs = {}
if obj.spec.paused then
  return {status = "Suspended", message = "paused by its owner"}
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the gadget controller"
  return hs
end
for i, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" and c.status == "True" then
    return {status = "Healthy", message = c.message}
  elseif c.type == "Ready" and c.status == "False" then
    return {status = "Degraded", message = c.message}
  end
end
return {status = "Progressing", message = "no Ready condition among " .. table.getn(obj.status.conditions)}
"""


@pytest.fixture(scope="module")
def gadget_crd(kube: Kube) -> Iterator[Any]:
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    name = f"{PLURAL}.{GROUP}"
    free = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    deadline = time.monotonic() + 60
    while ((kube.get(crds, "", name) or {}).get("metadata") or {}).get("deletionTimestamp"):
        assert time.monotonic() < deadline, "the CRD of an earlier run is still being deleted"
        time.sleep(0.3)  # an earlier run's: let it go before making it again
    kube.apply(crds, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": name},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": PLURAL, "singular": "healthgadget", "kind": KIND},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "properties": {"spec": free, "status": free}}}}]},
    }, field_manager="tests")  # fmt: skip
    while True:
        conds = {
            c["type"]: c["status"]
            for c in ((kube.get(crds, "", name) or {}).get("status") or {}).get("conditions") or []
        }
        if conds.get("Established") == "True":
            break
        assert time.monotonic() < deadline, "the CRD was never established"
        time.sleep(0.2)
    while (info := kube.discovery.find(f"{GROUP}/v1", KIND)) is None:
        assert time.monotonic() < deadline, "the API server never served the CRD"
        time.sleep(0.3)
        kube.discovery.refresh()
    yield info
    kube.delete(crds, "", name)


@pytest.fixture
def gadget_controller(kube: Kube, gadget_crd: Any, namespace: str) -> Iterator[None]:
    """Sets each gadget's status from its spec (spec.ready, spec.message), through the status subresource."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            for g in kube.list(gadget_crd, namespace):
                spec, meta = g.get("spec") or {}, g["metadata"]
                want = {"observedGeneration": meta["generation"], "conditions": [
                    {"type": "Ready", "status": "True" if spec.get("ready") else "False",
                     "reason": "Test", "message": spec.get("message", "")}]}  # fmt: skip
                if g.get("status") != want:
                    with contextlib.suppress(Exception):  # deleted meanwhile: the next round sees it gone
                        kube.patch_merge(gadget_crd, namespace, meta["name"], {"status": want}, subresource="status")

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stop.set()
    t.join(5)


@pytest.fixture
def reset_customizations() -> Iterator[None]:
    yield
    customizations.configure(dirs=[], configmaps=None)


def gadget(ready: bool, message: str) -> str:
    return dump({"apiVersion": f"{GROUP}/v1", "kind": KIND, "metadata": {"name": "g1"},
                 "spec": {"ready": ready, "message": message}})  # fmt: skip


def test_a_script_from_a_directory_fails_and_passes_a_sync(
    engine: Engine, make_git, namespace: str, tmp_path: Path, gadget_controller: None,  # type: ignore[no-untyped-def]
    reset_customizations: None, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    scripts = tmp_path / "resource_customizations" / GROUP / KIND
    scripts.mkdir(parents=True)
    (scripts / "health.lua").write_text(SCRIPT)
    monkeypatch.setenv("SLIPWAY_CUSTOMIZATIONS", str(tmp_path / "resource_customizations"))
    bad = 'Issuer "letsencrypt" not found:  quota  exceeded'
    repo = make_git({"k8s/g.yaml": gadget(False, bad)})
    wf = add_workflow(engine, repo, namespace)
    failed = engine.sync(wf)
    assert failed.status == "failed"
    assert f"{KIND}/g1 is degraded: {bad}" in failed.message
    assert {"resource": f"{KIND}/g1", "namespace": namespace, "status": "Degraded", "message": bad} in failed.health

    repo.commit({"k8s/g.yaml": gadget(True, "all gadgets go")})
    passed = engine.sync(wf)
    assert passed.status == "succeeded", passed.message
    assert {"resource": f"{KIND}/g1", "namespace": namespace, "status": "Healthy",
            "message": "all gadgets go"} in passed.health  # fmt: skip
    # What workflow status and the API show of it now: the same script's word.
    rows = {r["resource"]: r for r in engine.resources(wf)}
    assert rows[f"{KIND}/g1"]["health"] == {"status": "Healthy", "message": "all gadgets go"}

    # Suspended settles the wait: the sync succeeds at once and records the word.
    repo.commit({"k8s/g.yaml": dump({"apiVersion": f"{GROUP}/v1", "kind": KIND, "metadata": {"name": "g1"},
                                     "spec": {"ready": False, "message": "never", "paused": True}})})  # fmt: skip
    started = time.monotonic()
    paused = engine.sync(wf)
    assert paused.status == "succeeded", paused.message
    assert time.monotonic() - started < 30  # not the 60 s timeout
    assert {"resource": f"{KIND}/g1", "namespace": namespace, "status": "Suspended",
            "message": "paused by its owner"} in paused.health  # fmt: skip


@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
def test_a_script_in_a_labelled_configmap_of_the_kubernetes_store(
    engine: Engine, kube: Kube, make_git, namespace: str, slipway_namespace: str,  # type: ignore[no-untyped-def]
    gadget_controller: None, reset_customizations: None,
) -> None:  # fmt: skip
    cms = kube.discovery.lookup("v1", "ConfigMap")
    kube.apply(cms, {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": "gadget-health", "namespace": slipway_namespace,
                                  "labels": {"slipway.dev/customizations": "true"}},
                     "data": {f"resource.customizations.health.{GROUP}_{KIND}": SCRIPT}},
               field_manager="tests")  # fmt: skip
    repo = make_git({"k8s/g.yaml": gadget(False, "the gadget is on fire")})
    wf = add_workflow(engine, repo, namespace)
    failed = engine.sync(wf)
    assert failed.status == "failed" and f"{KIND}/g1 is degraded: the gadget is on fire" in failed.message
    repo.commit({"k8s/g.yaml": gadget(True, "cooled down")})
    passed = engine.sync(wf)
    assert passed.status == "succeeded", passed.message
    assert any(h["status"] == "Healthy" and h["message"] == "cooled down" for h in passed.health)


def test_the_kubernetes_stores_configmap_source_decides_a_sync(
    engine: Engine, kube: Kube, make_git, namespace: str,  # type: ignore[no-untyped-def]
    gadget_controller: None, reset_customizations: None,
) -> None:  # fmt: skip
    """What the kubernetes store reads (its labelled ConfigMaps), as the source of the health a sync waits on,
    on any store: only labelled ConfigMaps count, and a later name comes first."""
    cms = kube.discovery.lookup("v1", "ConfigMap")
    key = f"resource.customizations.health.{GROUP}_{KIND}"
    for name, labelled, message in [("a-health", True, "from a"), ("b-health", True, None), ("c-health", False, "c")]:
        text = SCRIPT if message is None else f'return {{status = "Degraded", message = "{message}"}}'
        labels = {"slipway.dev/customizations": "yes"} if labelled else {}
        kube.apply(cms, {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {key: text}},
                   field_manager="tests")  # fmt: skip
    store_like = SimpleNamespace(kube=kube, namespace=namespace)
    found = KubernetesStore.health_customizations(store_like)  # type: ignore[arg-type]
    assert sorted(found) == [f"{namespace}/a-health", f"{namespace}/b-health"]
    customizations.configure(configmaps=lambda: KubernetesStore.health_customizations(store_like))  # type: ignore[arg-type]
    repo = make_git({"k8s/g.yaml": gadget(False, "the gadget is on fire")})
    wf = add_workflow(engine, repo, namespace)
    failed = engine.sync(wf)
    assert failed.status == "failed" and f"{KIND}/g1 is degraded: the gadget is on fire" in failed.message
    repo.commit({"k8s/g.yaml": gadget(True, "cooled down")})
    passed = engine.sync(wf)
    assert passed.status == "succeeded", passed.message
