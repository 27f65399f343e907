"""``slipway install``, deploy/ and running in a pod, against the local API server and its real RBAC."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway import tools
from slipway.errors import ConfigError
from slipway.kube import Kube
from slipway.store.kubernetes import crds, install
from slipway.store.kubernetes.names import CRDS
from tests.kubestore import kubectl

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).parents[2]


def slipway(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slipway", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture
def env(cluster: Any, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "SLIPWAY_HOME": str(tmp_path / "home")}


def versions(kube: Kube, namespace: str) -> dict[str, str]:
    out = {}
    for crd in crds.crds():
        name = crd["metadata"]["name"]
        out[name] = (kube.get(CRDS, "", name) or {})["metadata"]["resourceVersion"]
    role = kube.get(kube.discovery.lookup("rbac.authorization.k8s.io/v1", "Role"), namespace, "slipway")
    out["role"] = (role or {})["metadata"]["resourceVersion"]
    return out


def test_install_twice_changes_nothing_the_second_time(
    kube: Kube, env: dict[str, str], slipway_namespace: str, namespace: str
) -> None:
    args = ["install", "--namespace", slipway_namespace, "--target-namespace", namespace]
    first = slipway(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "applied CustomResourceDefinition/workflows.slipway.dev" in first.stdout
    before = versions(kube, slipway_namespace)
    second = slipway(*args, env=env)
    assert second.returncode == 0, second.stderr
    assert versions(kube, slipway_namespace) == before
    binding = kube.get(kube.discovery.lookup("rbac.authorization.k8s.io/v1", "RoleBinding"), namespace,
                       "slipway-deployer")  # fmt: skip
    assert binding is not None and binding["subjects"][0]["namespace"] == slipway_namespace


def test_the_deploy_directory_holds_what_install_prints(env: dict[str, str]) -> None:
    printed = slipway("install", "--print", env={k: v for k, v in env.items() if k != "SLIPWAY_NAMESPACE"})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (ROOT / "deploy" / "install.yaml").read_text(), (
        "deploy/install.yaml is stale: regenerate it with `slipway install --print > deploy/install.yaml`"
    )
    kinds = [d["kind"] for d in yaml.safe_load_all(printed.stdout)]
    assert kinds[:2] == ["CustomResourceDefinition"] * 2 and "Role" in kinds and "ClusterRoleBinding" not in kinds


def test_an_older_slipway_refuses_the_clusters_newer_crds(
    kube: Kube, env: dict[str, str], slipway_namespace: str, slipway_crds: None
) -> None:
    with pytest.raises(ConfigError, match=rf"revision {crds.CRD_REVISION}, newer than this slipway's \(0\)"):
        install.check_revisions(kube, ours=0)
    # The same through the command, as a slipway whose CRDs are of revision 0 would run it.
    code = (
        "import sys; import slipway.store.kubernetes.crds as c; c.CRD_REVISION = 0; "
        "from slipway.cli.main import main; sys.argv = ['slipway', 'install', '--namespace', sys.argv[1]]; main()"
    )
    other = f"{slipway_namespace}-x"
    out = subprocess.run([sys.executable, "-c", code, other], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "newer than this slipway's (0); nothing was changed" in out.stderr and "Traceback" not in out.stderr
    assert kube.get(kube.discovery.lookup("v1", "Namespace"), "", other) is None


def test_deploy_manifests_pass_a_server_side_dry_run(cluster: Any, slipway_namespace: str, tmp_path: Path) -> None:
    base = tmp_path / "overlay" / "base"
    shutil.copytree(ROOT / "deploy", base)
    (base.parent / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {slipway_namespace}\nresources:\n  - base\n"
    )
    built = subprocess.run([tools.find("kustomize"), "build", str(base.parent)], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert built.returncode == 0, built.stderr
    kinds = sorted({d["kind"] for d in yaml.safe_load_all(built.stdout)})
    assert {"Deployment", "Service", "ServiceAccount", "Role", "ClusterRole", "CustomResourceDefinition"} <= set(kinds)
    deployment = next(d for d in yaml.safe_load_all(built.stdout) if d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "slipway-controller")  # fmt: skip
    assert deployment["spec"]["replicas"] == 3
    assert "--shards" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    out = kubectl(cluster.kubeconfig, "apply", "--server-side", "--dry-run=server", "--field-manager=tests", "-f", "-",
                  stdin=built.stdout)  # fmt: skip
    assert "deployment.apps/slipway-controller serverside-applied (server dry run)" in out
    assert "service/slipway serverside-applied (server dry run)" in out


def test_slipway_in_a_pod_reads_its_service_account_and_its_rbac_holds(
    cluster: Any, kube: Kube, env: dict[str, str], slipway_namespace: str, namespace: str, tmp_path: Path
) -> None:
    """The files the kubelet mounts, made from a real token of a real ServiceAccount (TokenRequest API)."""
    assert slipway("install", "--namespace", slipway_namespace, env=env).returncode == 0
    token = kubectl(cluster.kubeconfig, "-n", slipway_namespace, "create", "token", "slipway", "--duration=10m")
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(token.strip())
    (sa / "ca.crt").write_bytes((cluster.root / "pki" / "ca.crt").read_bytes())
    (sa / "namespace").write_text(slipway_namespace)
    pod_env = {k: v for k, v in env.items() if k not in ("KUBECONFIG", "SLIPWAY_NAMESPACE")}
    pod_env.update({
        "HOME": str(tmp_path / "pod-home"),  # no ~/.kube/config in a pod
        "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(cluster.ports["apiserver"]),
        "SLIPWAY_SERVICEACCOUNT_DIR": str(sa), "SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": slipway_namespace,
    })  # fmt: skip
    added = slipway("repo", "add", "https://git.example.com/app.git", "--id", "app", "--no-check", env=pod_env)
    assert added.returncode == 0, added.stderr
    listed = slipway("-o", "json", "repo", "list", env=pod_env)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == ["app"]
    code = (
        "from slipway.kube import connect; from slipway.errors import KubeForbidden\n"
        "k = connect()\n"
        "print(k.server, k.context)\n"
        "try:\n"
        f"    k.list(k.discovery.lookup('v1', 'Secret'), {namespace!r})\n"
        "    print('listed')\n"
        "except KubeForbidden as e:\n"
        "    print('forbidden:', e)\n"
    )
    probe = subprocess.run([sys.executable, "-c", code], env=pod_env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert f"https://127.0.0.1:{cluster.ports['apiserver']} in-cluster" in probe.stdout
    # Its Role reaches its own namespace only: no Secret of a namespace it was not given.
    assert "forbidden:" in probe.stdout and f"system:serviceaccount:{slipway_namespace}:slipway" in probe.stdout
    # The kubeconfig slipway wrote names the token file; the token itself is nowhere in it.
    assert token.strip()[:40] not in probe.stdout + probe.stderr + listed.stdout + added.stdout + added.stderr


def test_install_to_a_missing_target_namespace_applies_nothing(kube: Kube, env: dict[str, str], namespace: str) -> None:
    home = f"{namespace}-slipway"[:63]  # slipway's own namespace: it must not be created either
    missing = f"{namespace}-missing"[:63]
    namespaces = kube.discovery.lookup("v1", "Namespace")
    try:
        args = ["install", "--namespace", home, "--target-namespace", namespace, "--target-namespace", missing]
        r = slipway(*args, env=env)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"namespace {missing} does not exist; nothing was applied" in r.stderr
        assert "applied" not in r.stdout
        assert kube.get(namespaces, "", home) is None
        binding = kube.get(kube.discovery.lookup("rbac.authorization.k8s.io/v1", "RoleBinding"), namespace,
                           "slipway-deployer")  # fmt: skip
        assert binding is None
    finally:
        kube.delete(namespaces, "", home)
