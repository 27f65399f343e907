"""A hook may only replace what slipway's marks prove is an earlier run of that same hook of that workflow.

Each test plays one cell of the threat model (who made the object that has the hook's name × what
the hook would do to it): a person, another workflow, another state store, this workflow's own
ordinary object, an object that appears between the plan and the hook's run, and the kinds whose
deletion cascades (Namespace, CustomResourceDefinition). Everything else is a ``resource_exists``
conflict in the plan, and nothing is applied.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from slipway import settings, waves
from slipway.engine import Engine
from slipway.kube import Kube
from slipway.plan.ownership import HOOK_LABEL

from .conftest import add_workflow, configmap, dump
from .test_hooks_waves import get, hook_job, jobs

CRD_GROUP = "hooks.slipway.dev"
CASCADE_OPT_IN = "slipway.dev/allow-cascading-hook"


def make_by_hand(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    """What `kubectl apply` by a person does: another field manager, no marks of slipway's."""
    return kube.apply(kube.discovery.lookup(obj["apiVersion"], obj["kind"]), obj, field_manager="kubectl")


def hook_cm(name: str, hook: str = "PreSync", data: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    key = "helm.sh/hook" if hook.startswith(("pre-", "post-")) else "argocd.argoproj.io/hook"
    return configmap(name, data or {"from": "git"}, annotations={key: hook, **annotations})


def uid(obj: dict[str, Any] | None) -> str:
    assert obj is not None
    return str(obj["metadata"]["uid"])


def test_hooks_named_like_hand_made_objects_are_conflicts_and_nothing_is_applied(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    password = "pw-" + secrets.token_hex(8)
    settings_cm = make_by_hand(kube, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": "settings", "namespace": namespace}, "data": {"mine": "yes"}})  # fmt: skip
    db = make_by_hand(kube, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
                             "data": {"dbpassword": base64.b64encode(password.encode()).decode()}})  # fmt: skip
    secret_hook = {"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "db", "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
                   "stringData": {"other": "value"}}  # fmt: skip
    on_fail = hook_cm("sync-failed", "SyncFail")  # not named like anything: shows whether SyncFail hooks ran
    repo = make_git({"k8s/a.yaml": dump(hook_cm("settings", "pre-install"), secret_hook, configmap("app"), on_fail)})
    wf = add_workflow(engine, repo, namespace)

    plan = engine.plan(wf)
    found = sorted((c.type, c.resource) for c in plan.conflicts)
    assert found == [("resource_exists", "ConfigMap/settings"), ("resource_exists", "Secret/db")], found
    assert all("not managed by slipway" in c.description and "hook" in c.description for c in plan.conflicts)
    assert password not in json.dumps(plan.to_seed())  # the conflict shows the live Secret masked

    result = engine.sync(wf)
    assert result.status == "refused" and "refused" in result.message, result.message
    assert result.hooks == []  # no hook ran, not even the SyncFail one: a refused plan applies nothing
    after_cm, after_db = get(kube, "ConfigMap", namespace, "settings"), get(kube, "Secret", namespace, "db")
    assert uid(after_cm) == uid(settings_cm) and after_cm["data"] == {"mine": "yes"}  # type: ignore[index]
    assert uid(after_db) == uid(db) and base64.b64decode(after_db["data"]["dbpassword"]).decode() == password  # type: ignore[index]
    assert get(kube, "ConfigMap", namespace, "app") is None and get(kube, "ConfigMap", namespace, "sync-failed") is None


def test_a_hook_never_replaces_another_workflows_or_stores_object_or_a_cluster_scoped_namesake(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    other = add_workflow(engine, make_git({"k8s/a.yaml": dump(configmap("shared", {"owner": "other"}))}), namespace,
                         name="other")  # fmt: skip
    assert engine.sync(other).status == "succeeded"
    shared = get(kube, "ConfigMap", namespace, "shared")

    role_name = f"{namespace}-hook"
    roles = kube.discovery.lookup("rbac.authorization.k8s.io/v1", "ClusterRole")
    role = make_by_hand(kube, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                               "metadata": {"name": role_name}, "rules": []})  # fmt: skip
    role_hook = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {"name": role_name, "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
                 "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}  # fmt: skip
    repo = make_git({"k8s/a.yaml": dump(configmap("plain"), configmap("keep"))})
    wf = add_workflow(engine, repo, namespace, name="mine")
    try:
        assert engine.sync(wf).status == "succeeded"  # ConfigMap/plain: this workflow's ordinary object
        plain = get(kube, "ConfigMap", namespace, "plain")
        # Marked as the hook of this very workflow, but by another state store (same workflow id there).
        forged = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "forged", "namespace": namespace}}
        labels = {settings.LABEL_MANAGED_BY: "slipway", settings.LABEL_WORKFLOW: wf,
                  settings.LABEL_INSTANCE: "another-store", HOOK_LABEL: waves.identity(wf, forged)}  # fmt: skip
        forged_live = make_by_hand(kube, {**forged, "metadata": {**forged["metadata"], "labels": labels},
                                          "data": {"theirs": "yes"}})  # fmt: skip
        repo.commit({"k8s/a.yaml": dump(hook_cm("shared"), hook_cm("plain", "post-install"), hook_cm("forged"),
                                        role_hook, configmap("keep"))})  # fmt: skip
        plan = engine.plan(wf)
        by = {c.resource: c for c in plan.conflicts}
        assert sorted(by) == ["ClusterRole/" + role_name, "ConfigMap/forged", "ConfigMap/plain", "ConfigMap/shared"]
        assert all(c.type == "resource_exists" for c in by.values())
        assert f"owned by workflow {other}" in by["ConfigMap/shared"].description
        assert "another slipway state store" in by["ConfigMap/forged"].description
        assert "not a run of this hook" in by["ConfigMap/plain"].description
        assert "not managed by slipway" in by["ClusterRole/" + role_name].description

        result = engine.sync(wf)
        assert result.status == "refused" and result.hooks == [], result.message
        assert get(kube, "ConfigMap", namespace, "shared") == shared
        assert get(kube, "ConfigMap", namespace, "plain") == plain
        assert get(kube, "ConfigMap", namespace, "forged") == forged_live
        assert kube.get(roles, "", role_name) == role
    finally:
        kube.delete(roles, "", role_name)


def test_a_hooks_own_earlier_run_is_still_replaced_and_a_generate_name_hook_deletes_only_its_own(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    generated = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"run": "1"},
                 "metadata": {"generateName": "report-", "annotations": {"argocd.argoproj.io/hook": "PostSync"}}}  # fmt: skip
    repo = make_git({"k8s/a.yaml": dump(hook_job("migrate", "pre-install,pre-upgrade"), generated, configmap("app"))})
    wf = add_workflow(engine, repo, namespace)
    first = engine.sync(wf)
    assert first.status == "succeeded", first.message
    job1 = get(kube, "Job", namespace, "migrate", "batch/v1")
    cms = kube.discovery.lookup("v1", "ConfigMap")
    (report1,) = [o for o in kube.list(cms, namespace) if o["metadata"]["name"].startswith("report-")]

    # Objects that carry the generateName hook's identity label without proving they are its runs.
    identity = report1["metadata"]["labels"][HOOK_LABEL]
    stray = {HOOK_LABEL: identity}
    other_store = {**report1["metadata"]["labels"], settings.LABEL_INSTANCE: "another-store"}
    for name, labels in (("report-by-hand", stray), ("report-other-store", other_store)):
        make_by_hand(kube, {"apiVersion": "v1", "kind": "ConfigMap", "data": {"keep": "me"},
                            "metadata": {"name": name, "namespace": namespace, "labels": labels}})  # fmt: skip

    plan = engine.plan(wf)
    assert not plan.conflicts, [c.description for c in plan.conflicts]  # its own earlier run is no conflict
    repo.commit(
        {"k8s/a.yaml": dump(hook_job("migrate", "pre-install,pre-upgrade"), generated, configmap("app", {"v": "2"}))}
    )
    second = engine.sync(wf)
    assert second.status == "succeeded", second.message
    job2 = get(kube, "Job", namespace, "migrate", "batch/v1")
    assert uid(job2) != uid(job1)  # BeforeHookCreation: the earlier run went, a new one ran
    assert [j["metadata"]["name"] for j in jobs(kube, namespace)] == ["migrate"]
    names = {o["metadata"]["name"] for o in kube.list(cms, namespace) if not o["metadata"].get("deletionTimestamp")}
    assert report1["metadata"]["name"] not in names  # its own earlier run went
    assert {"report-by-hand", "report-other-store"} <= names  # what it cannot prove is its own stays


def test_an_object_made_between_the_plan_and_the_hooks_run_is_left_alone(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    policy = {"argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}
    repo = make_git({"k8s/a.yaml": dump(hook_cm("raced"), hook_cm("raced-apply", **policy), configmap("app"))})
    wf = add_workflow(engine, repo, namespace)
    made: dict[str, dict[str, Any]] = {}

    def someone_is_quicker(plan: Any) -> None:
        assert not plan.conflicts  # nothing had the names when the plan was made
        for name in ("raced", "raced-apply"):
            made[name] = make_by_hand(kube, {"apiVersion": "v1", "kind": "ConfigMap", "data": {"mine": "yes"},
                                             "metadata": {"name": name, "namespace": namespace}})  # fmt: skip

    result = engine.sync(wf, on_plan=someone_is_quicker)
    assert result.status == "failed", result.message
    assert "PreSync hook ConfigMap/raced" in result.message and "not managed by slipway" in result.message
    for name, before in made.items():
        assert get(kube, "ConfigMap", namespace, name) == before, name  # neither deleted nor taken over
    assert get(kube, "ConfigMap", namespace, "app") is None


def crd(plural: str, **annotations: str) -> dict[str, Any]:
    md: dict[str, Any] = {"name": f"{plural}.{CRD_GROUP}"}
    if annotations:
        md["annotations"] = annotations
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": md,
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": f"H{plural[1:-1].upper()}"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
        },
    }  # fmt: skip


def test_a_crd_or_namespace_hook_is_refused_without_the_opt_in_and_a_hand_made_crd_is_never_replaced(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    plural = f"h{namespace.rsplit('-', 1)[-1]}s"
    hook = {"helm.sh/hook": "pre-install"}
    ns_hook = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": f"{namespace}-h", "annotations": {"argocd.argoproj.io/hook": "PreSync"}}}  # fmt: skip
    repo = make_git({"k8s/a.yaml": dump(crd(plural, **hook), ns_hook, configmap("app"))})
    wf = add_workflow(engine, repo, namespace)
    crds = kube.discovery.lookup("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    nss = kube.discovery.lookup("v1", "Namespace")
    name = f"{plural}.{CRD_GROUP}"
    try:
        plan = engine.plan(wf)
        found = sorted((c.type, c.resource) for c in plan.conflicts)
        assert found == [("validation", f"CustomResourceDefinition/{name}"), ("validation", f"Namespace/{namespace}-h")]
        assert all(CASCADE_OPT_IN in c.description + " ".join(c.suggestions) for c in plan.conflicts)
        assert engine.sync(wf).status == "failed"  # a validation conflict: an invalid declaration, not a refusal
        assert kube.get(crds, "", name) is None and kube.get(nss, "", f"{namespace}-h") is None

        # A CRD made by hand, with a custom resource of someone else in it: even with the opt-in, a hook
        # of that name is a conflict, and the CRD and its custom resources stay.
        hand = make_by_hand(kube, crd(plural))
        kind = hand["spec"]["names"]["kind"]
        deadline = time.monotonic() + 30
        while kube.discovery.find(f"{CRD_GROUP}/v1", kind) is None and time.monotonic() < deadline:
            time.sleep(0.2)  # until the API server serves the new kind
            kube.discovery.refresh()
        theirs = make_by_hand(kube, {"apiVersion": f"{CRD_GROUP}/v1", "kind": kind,
                                     "metadata": {"name": "theirs", "namespace": namespace}})  # fmt: skip
        repo.commit({"k8s/a.yaml": dump(crd(plural, **hook, **{CASCADE_OPT_IN: "true"}), configmap("app"))})
        plan = engine.plan(wf)
        assert [(c.type, c.resource) for c in plan.conflicts] == [
            ("resource_exists", f"CustomResourceDefinition/{name}")
        ]
        assert engine.sync(wf).status == "refused"
        assert uid(kube.get(crds, "", name)) == uid(hand)
        assert uid(get(kube, kind, namespace, "theirs", f"{CRD_GROUP}/v1")) == uid(theirs)
    finally:
        kube.delete(crds, "", name)
        kube.delete(nss, "", f"{namespace}-h")


def test_remove_cascade_deletes_the_runs_of_its_hooks_and_nothing_it_cannot_prove_is_one(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    generated = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"run": "1"},
                 "metadata": {"generateName": "report-", "annotations": {"argocd.argoproj.io/hook": "PostSync"}}}  # fmt: skip
    repo = make_git({"k8s/a.yaml": dump(hook_job("migrate", "PreSync"), generated, configmap("app"))})
    wf = add_workflow(engine, repo, namespace)
    assert engine.sync(wf).status == "succeeded"
    cms, pods = kube.discovery.lookup("v1", "ConfigMap"), kube.discovery.lookup("v1", "Pod")
    (report,) = [
        o["metadata"]["name"] for o in kube.list(cms, namespace) if o["metadata"]["name"].startswith("report-")
    ]
    assert kube.list(pods, namespace, label_selector="job-name=migrate")  # the hook Job's Pod
    # Marked as this workflow's, with a hook label that is not the identity its name makes; and the
    # right identity, made by another state store.
    labels = {settings.LABEL_MANAGED_BY: "slipway", settings.LABEL_WORKFLOW: wf,
              settings.LABEL_INSTANCE: engine.store.instance_id, HOOK_LABEL: "0" * 40}  # fmt: skip
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lookalike", "namespace": namespace}}
    make_by_hand(kube, {**ref, "metadata": {**ref["metadata"], "labels": labels}})
    other = {**ref, "metadata": {"name": "other-store", "namespace": namespace}}
    other_labels = {**labels, settings.LABEL_INSTANCE: "another-store", HOOK_LABEL: waves.identity(wf, other)}
    make_by_hand(kube, {**other, "metadata": {**other["metadata"], "labels": other_labels}})

    plan = engine.removal_plan(wf)
    assert sorted(it.ref.resource for it in plan.deletions) == ["ConfigMap/app", f"ConfigMap/{report}", "Job/migrate"]
    result = engine.remove_workflow(wf, cascade=True)
    assert result is not None and result.status == "succeeded", result and result.message
    deadline = time.monotonic() + 60
    while kube.list(pods, namespace, label_selector="job-name=migrate") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not kube.list(pods, namespace, label_selector="job-name=migrate")  # its Pods went with the Job
    job = get(kube, "Job", namespace, "migrate", "batch/v1")
    assert job is None or job["metadata"].get("deletionTimestamp")
    left = {o["metadata"]["name"] for o in kube.list(cms, namespace) if not o["metadata"].get("deletionTimestamp")}
    assert report not in left and "app" not in left
    assert {"lookalike", "other-store"} <= left
