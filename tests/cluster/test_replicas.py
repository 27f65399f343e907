"""Replicas of ``slipway controller --shards N`` on the kubernetes store: real processes, Leases, Git.

Each replica is a process of its own with its own identity and SLIPWAY_HOME (nothing on disk is
shared); they find each other and the workflows through the API server only, with the default
timings (a 15 s lease). The test namespace of each test is its SLIPWAY_NAMESPACE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.kube import Kube
from slipway.kube import leases as verbs
from slipway.source import GitSource
from slipway.store.kubernetes import KubernetesStore

from .conftest import Repo, configmap, dump
from .test_controller import cm_value, wait_until

pytestmark = pytest.mark.cluster


@dataclass
class Replicas:
    env: dict[str, str]
    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, identity: str, shards: int) -> subprocess.Popen[bytes]:
        home = self.tmp / f"home-{identity}"
        home.mkdir(exist_ok=True)
        env = {**self.env, "SLIPWAY_HOME": str(home)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "slipway", "controller", "--shards", str(shards), "--identity", identity,
             "--concurrency", "4"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log(identity).open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs[identity] = proc
        return proc

    def log(self, identity: str) -> Path:
        return self.tmp / f"{identity}.log"

    def logs(self) -> str:
        return "\n".join(self.log(i).read_text() for i in self.procs if self.log(i).exists())

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def replicas(cluster: Any, slipway_namespace: str, tmp_path: Path) -> Iterator[Replicas]:
    env = {
        **os.environ,
        "SLIPWAY_STORE": "kubernetes",
        "SLIPWAY_NAMESPACE": slipway_namespace,
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    r = Replicas(env, tmp_path)
    yield r
    r.stop_all()


@pytest.fixture
def kengine(cluster: Any, slipway_namespace: str, tmp_path: Path) -> Iterator[Engine]:
    home = tmp_path / "home-test"
    eng = Engine(KubernetesStore(), GitSource(cache_dir=home / "git", home=home))
    yield eng


def holders(kube: Kube, namespace: str) -> dict[str, str]:
    leases = verbs.list_leases(kube, namespace, "slipway.dev/lease=shard")
    return {r.name: r.holder for r in leases}


def spread(kube: Kube, namespace: str) -> Counter[str]:
    return Counter(h for h in holders(kube, namespace).values() if h)


def test_three_replicas_share_the_work_and_survive_kill_and_sigterm(
    kengine: Engine, kube: Kube, replicas: Replicas, make_git, namespace: str, slipway_namespace: str
) -> None:  # type: ignore[no-untyped-def]
    shards, n_repos, per_repo = 6, 4, 3
    repos: list[Repo] = []
    wfs: dict[str, Repo] = {}
    for j in range(n_repos):
        files = {f"apps/wf-{j}-{i}/a.yaml": dump(configmap(f"cm-{j}-{i}", {"v": "1"})) for i in range(per_repo)}
        repo = make_git(files)
        repos.append(repo)
        rid = kengine.register_repository({"id": f"repo-{j}", "url": repo.url, "poll_interval": "2s"}).id
        for i in range(per_repo):
            wid = kengine.create_workflow({
                "id": f"wf-{j}-{i}", "repository": rid, "target_path": f"apps/wf-{j}-{i}", "auto_sync": True,
                "destination": {"namespace": namespace}, "sync_policy": {"health_check": {"timeout": "60s"}},
            }).id  # fmt: skip
            wfs[wid] = repo
    for i in range(3):
        replicas.start(f"replica-{i}", shards)

    def all_at(value: str) -> bool:
        return all(cm_value(kube, namespace, f"cm-{w.removeprefix('wf-')}") == value for w in wfs)

    wait_until(lambda: all_at("1"), 120, step=0.5)
    wait_until(lambda: sorted(spread(kube, slipway_namespace).values()) == [2, 2, 2], 60, step=0.5)
    for wid in wfs:
        assert kengine.status(wid)["status"] == "synced"

    # kill -9 of the replica holding the most shards (they hold two each: the first of them), then a
    # commit to every repository.
    counts = spread(kube, slipway_namespace)
    victim = max(sorted(counts), key=lambda k: counts[k])
    replicas.procs[victim].send_signal(signal.SIGKILL)
    replicas.procs[victim].wait()
    killed = time.monotonic()
    heads = {}
    for j, repo in enumerate(repos):
        files = {f"apps/wf-{j}-{i}/a.yaml": dump(configmap(f"cm-{j}-{i}", {"v": "2"})) for i in range(per_repo)}
        heads[j] = repo.commit(files)
    took = wait_until(lambda: all_at("2"), 90, step=0.5)
    print(f"every workflow applied again {took:.1f}s after kill -9 of {victim}")
    wait_until(lambda: victim not in holders(kube, slipway_namespace).values(), 30, step=0.5)
    assert all(holders(kube, slipway_namespace).values()), holders(kube, slipway_namespace)
    assert time.monotonic() - killed >= 10  # the survivors waited for the dead one's Leases to run out
    for wid, repo in wfs.items():
        wait_until(lambda wid=wid: kengine.status(wid)["status"] == "synced", 30, step=0.5)
        head = heads[repos.index(repo)]
        synced = [h for h in kengine.history(wid) if h.commit_hash == head and h.kind == "sync"]
        assert len(synced) == 1, f"{wid}: {[(h.id, h.status, h.trigger) for h in synced]}"

    # SIGTERM of another replica: its shards are taken over within seconds.
    alive = sorted(i for i, p in replicas.procs.items() if p.poll() is None)
    leaving, staying = alive
    replicas.procs[leaving].send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert replicas.procs[leaving].wait(20) == 0
    took = wait_until(lambda: spread(kube, slipway_namespace) == Counter({staying: shards}), 20, step=0.2)
    handed = time.monotonic() - stopped
    assert handed < 10, f"shards handed over {handed:.1f}s after SIGTERM"
    print(f"SIGTERM: {shards} shards held by {staying} {handed:.1f}s later")
    text = replicas.logs()
    assert "Traceback" not in text
    assert "released shards" in replicas.log(leaving).read_text()
    del took


def test_kubectl_apply_is_picked_up_and_bad_objects_are_refused_or_reported(
    kengine: Engine, kube: Kube, replicas: Replicas, make_git, namespace: str, slipway_namespace: str, cluster: Any
) -> None:  # type: ignore[no-untyped-def]
    from tests.kubestore import kubectl

    kc = cluster.kubeconfig
    repo = make_git({"k8s/a.yaml": dump(configmap("declared", {"v": "1"})),
                     "bad/a.yaml": dump(configmap("never", {"v": "1"}))})  # fmt: skip
    replicas.start("only", 1)
    manifest = f"""
apiVersion: slipway.dev/v1alpha1
kind: Repository
metadata: {{name: app-repo, namespace: {slipway_namespace}}}
spec: {{url: "{repo.url}", pollInterval: 2s}}
---
apiVersion: slipway.dev/v1alpha1
kind: Workflow
metadata: {{name: declared, namespace: {slipway_namespace}}}
spec:
  repository: app-repo
  targetPath: k8s
  autoSync: true
  destination: {{namespace: {namespace}}}
  syncPolicy: {{autoPrune: true, healthCheck: {{timeout: 60s}}}}
"""
    kubectl(kc, "apply", "-f", "-", stdin=manifest)
    wait_until(lambda: cm_value(kube, namespace, "declared") == "1", 60, step=0.5)
    wait_until(lambda: kengine.status("declared")["status"] == "synced", 30, step=0.5)
    listed = kubectl(kc, "-n", slipway_namespace, "get", "workflows")
    assert "declared" in listed and "synced" in listed and "Synced" in listed and "Healthy" in listed

    # The schema refuses what it can say, with its message, and nothing is stored.
    bad = (
        manifest.split("---")[1]
        .replace("name: declared", "name: refused")
        .replace("autoPrune: true", "autoPrune: true, retry: {backoff: sometimes}")
    )
    out = subprocess.run([_kubectl(), "--kubeconfig", str(kc), "apply", "-f", "-"], input=bad, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode != 0 and 'spec.syncPolicy.retry.backoff: Unsupported value: "sometimes"' in out.stderr
    helm_with_branch = (
        f"apiVersion: slipway.dev/v1alpha1\nkind: Repository\nmetadata: {{name: charts, namespace: {slipway_namespace}}}\n"
        "spec: {url: 'https://charts.example.com', type: helm, branch: main}\n"
    )
    out = subprocess.run([_kubectl(), "--kubeconfig", str(kc), "apply", "-f", "-"], input=helm_with_branch,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode != 0 and "a Helm chart repository has no branch" in out.stderr
    assert "refused" not in kubectl(kc, "-n", slipway_namespace, "get", "workflows")

    # What the schema lets through but the model refuses: reported on the object, the controller carries on.
    model_bad = (
        manifest.split("---")[1]
        .replace("name: declared", "name: half-valid")
        .replace("targetPath: k8s", "targetPath: bad\n  helm: {releaseName: Not_A_Release}")
    )
    kubectl(kc, "apply", "-f", "-", stdin=model_bad)

    def reported() -> str:
        obj = kube.get(kube.discovery.lookup("slipway.dev/v1alpha1", "Workflow"), slipway_namespace, "half-valid")
        conds = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
        ready = conds.get("Ready") or {}
        return str(ready.get("message")) if ready.get("status") == "False" else ""

    wait_until(reported, 30, step=0.5)
    assert "spec.helm.releaseName" in reported() and "Not_A_Release" in reported()
    repo.commit({"k8s/a.yaml": dump(configmap("declared", {"v": "2"}))})
    wait_until(lambda: cm_value(kube, namespace, "declared") == "2", 60, step=0.5)
    assert cm_value(kube, namespace, "never") is None
    text = replicas.logs()
    assert "Traceback" not in text and replicas.procs["only"].poll() is None

    # kubectl delete of a Workflow: the controller lets it go; its history stays as a removed one's.
    kubectl(kc, "-n", slipway_namespace, "delete", "workflow", "declared")
    wait_until(lambda: not kengine.workflow_exists("declared"), 30)
    assert [h.status for h in kengine.history("declared")] == ["succeeded", "succeeded"]


def _kubectl() -> str:
    from slipway import tools

    return tools.find("kubectl")


def test_the_python_api_writes_objects_kubectl_lists(
    kengine: Engine, make_git, namespace: str, slipway_namespace: str, cluster: Any
) -> None:  # type: ignore[no-untyped-def]
    from slipway import gitops
    from tests.kubestore import kubectl

    repo = make_git({"k8s/a.yaml": dump(configmap("py", {"v": "1"}))})
    gitops.use_engine(kengine)
    try:
        rid = gitops.register_repository(id="py-repo", url=repo.url, branch="main")
        wid = gitops.create_workflow(id="py-wf", repository=rid, target_path="k8s",
                                     destination={"namespace": namespace},
                                     sync_policy={"auto_prune": True, "retry": {"limit": 1}})  # fmt: skip
        assert gitops.sync_workflow(wid)
        status = gitops.get_workflow_status(wid)
        assert status["status"] == "synced" and status["last_sync_result"]["status"] == "succeeded"
        assert [w["id"] for w in gitops.list_workflows()] == ["py-wf"]
    finally:
        gitops.use_engine(None)
    kc = cluster.kubeconfig
    listed = kubectl(kc, "-n", slipway_namespace, "get", "workflows,repositories")
    assert "workflow.slipway.dev/py-wf" in listed and "repository.slipway.dev/py-repo" in listed
    assert "synced" in listed and repo.url in listed
    spec = kubectl(kc, "-n", slipway_namespace, "get", "workflow", "py-wf", "-o", "jsonpath={.spec}")
    assert '"autoPrune":true' in spec and '"limit":1' in spec and '"targetPath":"k8s"' in spec
    last = kubectl(kc, "-n", slipway_namespace, "get", "workflow", "py-wf", "-o",
                   "jsonpath={.status.lastSyncResult.metrics.resourcesApplied}")  # fmt: skip
    assert last == "1"
