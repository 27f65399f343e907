"""Who may make slipway run code: shell hooks and local kubeconfigs come only from its admin.

A user whose RBAC allows only ``workflows.slipway.dev`` (a real ServiceAccount and Role, reached
by impersonation against the real API server), and a Workflow declared in Git (app of apps), try
to make the running controller execute a command as slipway: a ``preSyncHook``, or a
``destination.kubeconfig`` on slipway's machine whose exec plugin runs a command. Each would
leave a marker file; the controller is running and provably acting (an admin's workflow beside
them syncs and its hook runs), and the markers must never appear.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.engine import Engine
from slipway.errors import ConfigError
from slipway.kube import Kube
from tests.kubestore import kubectl

from .conftest import configmap, dump
from .test_controller import cm_value, wait_until
from .test_replicas import Replicas, kengine, replicas

pytestmark = pytest.mark.cluster
__all__ = ["kengine", "replicas"]


def tenant(kubeconfig: Path, slipway_namespace: str) -> str:
    """A ServiceAccount whose Role allows Workflows in slipway's namespace and nothing else; the
    ``--as`` user that impersonates it."""
    kubectl(kubeconfig, "apply", "-f", "-", stdin=f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: tenant, namespace: {slipway_namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: workflows-only, namespace: {slipway_namespace}}}
rules:
- apiGroups: [slipway.dev]
  resources: [workflows]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: tenant-workflows, namespace: {slipway_namespace}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: workflows-only}}
subjects:
- {{kind: ServiceAccount, name: tenant, namespace: {slipway_namespace}}}
""")  # fmt: skip
    return f"system:serviceaccount:{slipway_namespace}:tenant"


def ready(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(kube.discovery.lookup("slipway.dev/v1alpha1", "Workflow"), namespace, name) or {}
    conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
    return dict(conds.get("Ready") or {})


def refused(kube: Kube, namespace: str, name: str) -> bool:
    return ready(kube, namespace, name).get("status") == "False"


def synced_ever(kube: Kube, namespace: str, name: str) -> bool:
    obj = kube.get(kube.discovery.lookup("slipway.dev/v1alpha1", "Workflow"), namespace, name) or {}
    status = obj.get("status") or {}
    return bool(status.get("lastSyncResult") or status.get("syncSeq") or status.get("claim"))


def exec_kubeconfig(cluster_kubeconfig: Path, path: Path, marker: Path) -> Path:
    """A kubeconfig for the test cluster whose exec credential plugin leaves ``marker`` when it runs."""
    admin = yaml.safe_load(cluster_kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]["server"]
    credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                             "status": {"token": "not-a-token"}})  # fmt: skip
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh",
            "args": ["-c", f"touch {marker}; echo '{credential}'"]}}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    return path


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slipway", *args], env=env, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip


def test_a_user_who_may_only_write_workflows_cannot_make_the_controller_run_a_command(
    kengine: Engine,
    kube: Kube,
    replicas: Replicas,
    make_git,
    namespace: str,
    slipway_namespace: str,
    cluster: Any,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    kc = cluster.kubeconfig
    user = tenant(kc, slipway_namespace)
    # The user's rights are as narrow as said: Workflows yes, Secrets (the store's key) no.
    denied = kubectl(kc, "--as", user, "-n", slipway_namespace, "get", "secrets", check=False)
    assert "forbidden" in denied.lower()

    repo = make_git(
        {f"{d}/a.yaml": dump(configmap(f"{d}-cm", {"v": "1"})) for d in ("admin", "yaml", "t1", "t2", "t3")}
    )
    kengine.register_repository({"id": "apps", "url": repo.url, "poll_interval": "2s"})
    admin_ran, admin_yaml_ran = tmp_path / "admin-hook-ran", tmp_path / "admin-yaml-hook-ran"
    hook_ran, plugin_ran = tmp_path / "tenant-hook-ran", tmp_path / "tenant-plugin-ran"
    # The admin (the store's owner, through the Python API): a hook and a local kubeconfig, allowed.
    kengine.create_workflow({
        "id": "admin-wf", "repository": "apps", "target_path": "admin", "auto_sync": True,
        "destination": {"namespace": namespace, "kubeconfig": str(kc)},
        "sync_policy": {"pre_sync_hooks": [f"touch {admin_ran}"], "health_check": {"timeout": "60s"}},
    })  # fmt: skip
    replicas.start("only", 1)

    evil = exec_kubeconfig(kc, tmp_path / "evil.kubeconfig", plugin_ran)
    manifest = f"""
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: tenant-hook, namespace: {slipway_namespace}}}
spec:
  repository: apps
  targetPath: t1
  autoSync: true
  destination: {{namespace: {namespace}}}
  syncPolicy: {{preSyncHooks: ["touch {hook_ran}"], healthCheck: {{timeout: 60s}}}}
---
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: tenant-kubeconfig, namespace: {slipway_namespace}}}
spec:
  repository: apps
  targetPath: t2
  autoSync: true
  destination: {{namespace: {namespace}, kubeconfig: "{evil}"}}
---
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: tenant-plain, namespace: {slipway_namespace}}}
spec:
  repository: apps
  targetPath: t3
  autoSync: true
  destination: {{namespace: {namespace}}}
"""
    kubectl(kc, "--as", user, "apply", "-f", "-", stdin=manifest)

    # The controller acts: the tenant's plain workflow and the admin's syncs, whose hook ran.
    wait_until(lambda: cm_value(kube, namespace, "t3-cm") == "1", 90, step=0.5)
    wait_until(lambda: cm_value(kube, namespace, "admin-cm") == "1" and admin_ran.exists(), 60, step=0.5)
    wait_until(lambda: kengine.status("admin-wf")["status"] == "synced", 30, step=0.5)

    # The others are refused, on their status, in the resource's words, and naming where an admin says so.
    wait_until(lambda: refused(kube, slipway_namespace, "tenant-hook"), 30, step=0.5)
    wait_until(lambda: refused(kube, slipway_namespace, "tenant-kubeconfig"), 30, step=0.5)
    hook_cond, kc_cond = (
        ready(kube, slipway_namespace, "tenant-hook"),
        ready(kube, slipway_namespace, "tenant-kubeconfig"),
    )
    assert hook_cond["reason"] == kc_cond["reason"] == "AdminOnly"
    assert "spec.syncPolicy.preSyncHooks" in hook_cond["message"] and "ConfigMap slipway-admin" in hook_cond["message"]
    assert "spec.destination.kubeconfig" in kc_cond["message"]
    time.sleep(5)  # more rounds of the controller (it reloads every 2 s)
    assert not hook_ran.exists(), "the tenant's pre-sync hook ran as slipway"
    assert not plugin_ran.exists(), "the tenant's kubeconfig exec plugin ran as slipway"
    assert cm_value(kube, namespace, "t1-cm") is None and cm_value(kube, namespace, "t2-cm") is None
    assert not synced_ever(kube, slipway_namespace, "tenant-hook")
    assert not synced_ever(kube, slipway_namespace, "tenant-kubeconfig")
    assert replicas.procs["only"].poll() is None and "Traceback" not in replicas.logs()

    # Asked for by hand: a clear error, from the engine and the command line, and nothing runs.
    with pytest.raises(ConfigError, match=r"spec.syncPolicy.preSyncHooks: .*only slipway's admin"):
        kengine.sync("tenant-hook")
    out = cli(replicas.env, "sync", "tenant-hook")
    assert out.returncode != 0 and "only slipway's admin" in out.stderr and "Traceback" not in out.stderr
    assert not hook_ran.exists()

    # The user edits the admin's workflow to add a hook of their own: refused the same way.
    kubectl(kc, "--as", user, "-n", slipway_namespace, "patch", "workflows.slipway.dev", "admin-wf", "--type", "merge",
            "-p", json.dumps({"spec": {"syncPolicy": {"postSyncHooks": [f"touch {hook_ran}"]}}}))  # fmt: skip
    wait_until(lambda: refused(kube, slipway_namespace, "admin-wf"), 30, step=0.5)
    repo.commit({"admin/a.yaml": dump(configmap("admin-cm", {"v": "2"}))})
    time.sleep(6)
    assert not hook_ran.exists() and cm_value(kube, namespace, "admin-cm") == "1"

    # An admin writing YAML with kubectl grants a hook in ConfigMap slipway-admin: it runs.
    kubectl(kc, "-n", slipway_namespace, "patch", "configmap", "slipway-admin", "--type", "merge", "-p",
            json.dumps({"data": {"workflow.admin-yaml": f"postSyncHooks: ['touch {admin_yaml_ran}']\n"}}))  # fmt: skip
    kubectl(kc, "apply", "-f", "-", stdin=f"""
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: admin-yaml, namespace: {slipway_namespace}}}
spec: {{repository: apps, targetPath: yaml, autoSync: true, destination: {{namespace: {namespace}}}}}
""")  # fmt: skip
    wait_until(lambda: admin_yaml_ran.exists() and cm_value(kube, namespace, "yaml-cm") == "1", 60, step=0.5)
    assert kengine.workflow("admin-yaml").sync_policy.post_sync_hooks == [f"touch {admin_yaml_ran}"]
    assert not hook_ran.exists() and not plugin_ran.exists()


def test_a_workflow_declared_in_git_runs_no_command_and_git_cannot_grant_one(
    kengine: Engine,
    kube: Kube,
    replicas: Replicas,
    make_git,
    namespace: str,
    slipway_namespace: str,
    cluster: Any,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    hook_ran, plugin_ran = tmp_path / "git-hook-ran", tmp_path / "git-plugin-ran"
    evil = exec_kubeconfig(cluster.kubeconfig, tmp_path / "evil.kubeconfig", plugin_ran)

    def child(name: str, path: str, extra: str = "") -> str:
        return f"""apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}, namespace: {slipway_namespace}}}
spec:
  repository: apps
  targetPath: {path}
  autoSync: true
  destination: {{namespace: {namespace}}}
{extra}"""

    repo = make_git({
        "apps/hooked.yaml": child("git-hooked", "c1", f'  syncPolicy: {{postSyncHooks: ["touch {hook_ran}"]}}\n'),
        "apps/plain.yaml": child("git-plain", "c2"),
        "c1/a.yaml": dump(configmap("c1-cm", {"v": "1"})),
        "c2/a.yaml": dump(configmap("c2-cm", {"v": "1"})),
    })  # fmt: skip
    kengine.register_repository({"id": "apps", "url": repo.url, "poll_interval": "2s"})
    kengine.create_workflow({
        "id": "parent", "repository": "apps", "target_path": "apps", "auto_sync": True,
        "destination": {"namespace": slipway_namespace}, "sync_policy": {"health_check": {"enabled": False}},
    })  # fmt: skip
    replicas.start("only", 1)

    wait_until(lambda: cm_value(kube, namespace, "c2-cm") == "1", 90, step=0.5)
    wait_until(lambda: refused(kube, slipway_namespace, "git-hooked"), 30, step=0.5)
    cond = ready(kube, slipway_namespace, "git-hooked")
    assert cond["reason"] == "AdminOnly" and "spec.syncPolicy.postSyncHooks" in cond["message"]
    time.sleep(5)
    assert not hook_ran.exists(), "a Workflow declared in Git ran a shell hook as slipway"
    assert not synced_ever(kube, slipway_namespace, "git-hooked")

    # Git tries to grant the hook itself (the admin's ConfigMap), and to slip in a kubeconfig Secret
    # whose exec plugin runs a command: slipway's namespace takes only Workflows and Repositories from Git.
    grant = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "slipway-admin", "namespace": slipway_namespace},
             "data": {"workflow.git-hooked": f"postSyncHooks: ['touch {hook_ran}']\n"}}  # fmt: skip
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "evil-kubeconfig", "namespace": slipway_namespace},
              "stringData": {"kubeconfig": evil.read_text()}}  # fmt: skip
    head = repo.commit({
        "apps/grant.yaml": dump(grant), "apps/secret.yaml": dump(secret),
        "apps/via-secret.yaml": child("git-via-secret", "c2").replace(
            f"destination: {{namespace: {namespace}}}", f"destination: {{namespace: {namespace}, kubeconfigSecret: evil-kubeconfig}}"),
    })  # fmt: skip

    def parent_refused() -> bool:
        last = [h for h in kengine.history("parent") if h.commit_hash == head]
        return bool(last) and last[0].status == "failed"

    wait_until(parent_refused, 60, step=0.5)
    message = next(h for h in kengine.history("parent") if h.commit_hash == head).message
    assert f"slipway's own namespace {slipway_namespace}" in message, message
    cms = kube.discovery.lookup("v1", "ConfigMap")
    assert "workflow.git-hooked" not in ((kube.get(cms, slipway_namespace, "slipway-admin") or {}).get("data") or {})
    assert kube.get(kube.discovery.lookup("v1", "Secret"), slipway_namespace, "evil-kubeconfig") is None
    time.sleep(5)
    assert not hook_ran.exists() and not plugin_ran.exists()
    assert replicas.procs["only"].poll() is None and "Traceback" not in replicas.logs()
