"""R2 the cluster goes away: the API server and etcd stopped mid-sync and started again, a slow and
lossy connection, and a sync that runs out of its retry budget.

On a local control plane of its own (cluster ``reliability``), so the faults never reach other
tests. After every fault: the sync is on the record with a clear message (never left running,
never a traceback), nothing is recorded as applied that is not live, and the next sync converges
to exactly what Git declares.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.cluster import local
from slipway.kube import Kube
from tests.gitservers import make_repo, origin_of
from tests.reliability.relay import relay

from .conftest import Cli, size

CLUSTER = "reliability"


@pytest.fixture(scope="module")
def r2_cluster() -> Iterator[local.ClusterInfo]:
    was_running = local.status(CLUSTER)["running"]
    info = local.up(CLUSTER)
    yield info
    if not was_running and not os.environ.get("SLIPWAY_KEEP_CLUSTER"):
        local.down(CLUSTER)


def objects(n: int, namespace: str, version: str) -> str:
    return yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"obj-{i:03d}",
                                "namespace": namespace}, "data": {"v": version}} for i in range(n)])  # fmt: skip


def test_r2_the_cluster_goes_away(r2_cluster: local.ClusterInfo, tmp_path: Path, record: Any) -> None:
    n = size(40, 300)
    kube = Kube(r2_cluster.kubeconfig)
    ns = f"r2-{os.getpid()}-{int(time.time())}"
    nss = kube.discovery.lookup("v1", "Namespace")
    kube.apply(nss, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, field_manager="tests")
    home = tmp_path / "home"
    env = {**os.environ, "SLIPWAY_HOME": str(home), "SLIPWAY_GIT_CACHE": str(tmp_path / "git"),
           "KUBECONFIG": str(r2_cluster.kubeconfig), "COLUMNS": "200"}  # fmt: skip
    cli = Cli(env, home, tmp_path)
    work = make_repo(tmp_path / "app", {"k8s/all.yaml": objects(n, ns, "0")})
    assert cli("repo", "add", str(origin_of(work)), "--id", "r").returncode == 0
    assert cli("workflow", "create", "--id", "w", "--repository", "r", "--path", "k8s", "--namespace", ns,
               "--no-health", "--retry-limit", "8").returncode == 0  # fmt: skip
    cms = kube.discovery.lookup("v1", "ConfigMap")
    declared = {f"obj-{i:03d}" for i in range(n)}
    tried = held = 0
    version = [0]

    def live() -> dict[str, str]:
        return {
            o["metadata"]["name"]: o["data"]["v"] for o in kube.list(cms, ns, label_selector="slipway.dev/workflow=w")
        }

    def new_version() -> None:
        from tests.gitservers import commit, push

        version[0] += 1
        commit(work, {"k8s/all.yaml": objects(n, ns, str(version[0]))})
        push(work)

    def check_after(fault: str, result: Any) -> None:
        nonlocal held
        assert "Traceback" not in result.stderr, result.stderr
        history = json.loads(cli("-o", "json", "history", "w", "--limit", "1").stdout)
        last = history[0]
        assert last["status"] in ("succeeded", "failed") and last["end_time"], f"{fault}: {last}"
        if last["status"] == "failed":
            assert last["message"].startswith("Sync failed:") and len(last["message"].splitlines()) == 1, last
        now = live()
        assert last["metrics"]["resources_applied"] <= sum(1 for v in now.values() if v == str(version[0])), fault
        r = cli("sync", "w", "--yes")
        assert r.returncode == 0, f"{fault}: the next sync did not converge: {r.stdout}{r.stderr}"
        assert live() == dict.fromkeys(declared, str(version[0])), f"{fault}: not what Git declares"
        held += 1

    for fault, component in (("API server stopped mid-sync", "kube-apiserver"), ("etcd stopped mid-sync", "etcd")):
        tried += 1
        new_version()
        proc = cli.popen("sync", "w", "--yes", log=tmp_path / f"{component}.log")
        time.sleep(1.0)
        local.stop_component(CLUSTER, component)
        time.sleep(4)
        local.start_component(CLUSTER, component)
        proc.wait(300)
        from subprocess import CompletedProcess

        text = (tmp_path / f"{component}.log").read_text()
        check_after(fault, CompletedProcess([], proc.returncode, text, text))

    # A sync that runs out of its budget: a clear failure, and the next one converges.
    tried += 1
    assert cli("workflow", "set", "w", "--retry-limit", "2").returncode == 0
    new_version()
    local.stop_component(CLUSTER, "kube-apiserver")
    try:
        started = time.monotonic()
        r = cli("sync", "w", "--yes")
        took = time.monotonic() - started
    finally:
        local.start_component(CLUSTER, "kube-apiserver")
    assert r.returncode == 2 and "cannot reach API server" in r.stderr and took < 60, (took, r.stderr)
    check_after("retry budget exhausted", r)

    # Slow and lossy: every chunk held 50 ms, one connection in five dropped at once.
    tried += 1
    config = yaml.safe_load(r2_cluster.kubeconfig.read_text())
    with relay(r2_cluster.ports["apiserver"], 0.05, drop=0.2, seed=2) as port:
        for c in config["clusters"]:
            c["cluster"]["server"] = f"https://127.0.0.1:{port}"
        slow = tmp_path / "slow.kubeconfig"
        slow.write_text(yaml.safe_dump(config))
        assert cli("workflow", "set", "w", "--kubeconfig", str(slow), "--retry-limit", "8").returncode == 0
        new_version()
        r = cli("sync", "w", "--yes")
        assert cli("workflow", "set", "w", "--kubeconfig", str(r2_cluster.kubeconfig)).returncode == 0
        check_after("slow and lossy connection", r)
    kube.delete(nss, "", ns)
    record("R2", "the API server and etcd stopped mid-sync, a retry budget run out, a slow lossy connection: "
           "recorded clearly, nothing recorded as applied that was not, the next sync converges", tried, held,
           "make reliability  # tests/reliability/test_r2_cluster.py", objects=n)  # fmt: skip
