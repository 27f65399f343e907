"""R6 prune never surprises: zero objects deleted that slipway did not apply.

Around a workflow with pruning on, a careless operator and a second installation put everything a
prune could wrongly take: ConfigMaps made by hand (some labelled with the workflow's own labels),
objects of a second state store whose workflow has the same id, objects annotated prune-disabled
(slipway's, Argo CD's and Flux's way), a namespace the workflow declared that now holds an object
made by hand, and a commit that renders nothing. Seeded rounds of commits then remove and restore
what Git declares. Every object slipway did not apply must survive; what it applied and Git no
longer declares must go (or stay, saying why, when annotated so).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from slipway.engine import Engine
from slipway.kube import Kube
from slipway.source import GitSource
from slipway.store import Store
from tests.gitservers import commit, make_repo, origin_of, push
from tests.manifests import configmap, dump

from .conftest import size

SEED = 6


def test_r6_nothing_deleted_that_slipway_did_not_apply(
    cluster: Any, kube: Kube, namespace: str, tmp_path: Path, record: Any
) -> None:
    rounds = size(4, 20)
    rng = random.Random(SEED)
    cms = kube.discovery.lookup("v1", "ConfigMap")
    nss = kube.discovery.lookup("v1", "Namespace")
    child_ns = f"{namespace[:50]}-r6"
    ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": child_ns}}
    disabled = [
        configmap("keep-s", annotations={"slipway.dev/prune": "disabled"}),
        configmap("keep-a", annotations={"argocd.argoproj.io/sync-options": "Prune=false"}),
        configmap("keep-f", annotations={"kustomize.toolkit.fluxcd.io/prune": "disabled"}),
    ]
    own = [configmap(f"own-{i}") for i in range(6)]
    work = make_repo(
        tmp_path / "app", {"k8s/a.yaml": dump(*own, *disabled, ns_obj, configmap("inside", namespace=child_ns))}
    )
    engines = []
    for n in (1, 2):
        home = tmp_path / f"home{n}"
        engines.append(Engine(Store(home=home), GitSource(cache_dir=tmp_path / f"git{n}", home=home)))
    first, second = engines
    try:
        for eng, path in ((first, "k8s"), (second, "other")):
            rid = eng.register_repository({"url": str(origin_of(work))}).id
            eng.create_workflow({"id": "w", "repository": rid, "target_path": path, "destination": {"namespace": namespace},
                                 "sync_policy": {"auto_prune": True, "health_check": {"enabled": False}}})  # fmt: skip
        assert first.sync("w").status == "succeeded"
        commit(work, {"other/b.yaml": dump(configmap("second-store"))})
        push(work)
        assert second.sync("w").status == "succeeded"

        labels = (kube.get(cms, namespace, "own-0") or {})["metadata"]["labels"]
        foreign = {
            "by-hand": configmap("by-hand", namespace=namespace),
            "by-hand-labelled": configmap("by-hand-labelled", namespace=namespace, labels=labels),
            "in-child": configmap("in-child", namespace=child_ns),
        }
        for obj in foreign.values():
            kube.apply(cms, obj, field_manager="kubectl")
        theirs = {(namespace, "by-hand"), (namespace, "by-hand-labelled"), (child_ns, "in-child"),
                  (namespace, "second-store")}  # fmt: skip
        tried = kept = 0
        for r in range(rounds):
            chosen = rng.sample(own, rng.randrange(0, len(own) + 1))
            files = {"k8s/a.yaml": dump(*chosen) if chosen else "# nothing\n"}
            commit(work, files)
            push(work)
            result = first.sync("w")
            if not chosen:
                assert result.status == "refused" and "renders no objects" in result.message, result.message
            else:
                assert result.status == "succeeded", result.message
                live = {
                    o["metadata"]["name"] for o in kube.list(cms, namespace, label_selector="slipway.dev/workflow=w")
                }
                assert {o["metadata"]["name"] for o in chosen} <= live
                gone = {o["metadata"]["name"] for o in own} - {o["metadata"]["name"] for o in chosen}
                assert not (gone & live), f"round {r}: {gone & live} should have been pruned"
            for ns, name in theirs:
                tried += 1
                kept += kube.get(cms, ns, name) is not None
            for obj in disabled:
                assert kube.get(cms, namespace, obj["metadata"]["name"]) is not None
            assert (kube.get(nss, "", child_ns) or {}).get("status", {}).get("phase") == "Active"
        assert kept == tried, "slipway deleted an object it did not apply"
    finally:
        for eng in engines:
            eng.store.close()
        kube.delete(nss, "", child_ns)
    record("R6", "prune around objects made by hand (some with the workflow's labels), a second state store's, "
           "prune-disabled ones, a namespace holding a foreign object, an empty render: objects slipway did not "
           "apply, checked after every sync", tried, kept, "make reliability  # tests/reliability/test_r6_prune.py",
           rounds=rounds, seed=SEED)  # fmt: skip
