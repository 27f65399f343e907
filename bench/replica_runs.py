"""P6 (controller replicas on the kubernetes store) and P7 (fail-over after kill -9 of one).

One run:

1. Make R real Git repositories (as P4 does): repository j holds the workflows i with i % R == j,
   each under ``apps/wf-NNNN/`` with four objects (ConfigMap, Secret, Service, Deployment).
2. Twice, cold, in a fresh SLIPWAY_NAMESPACE and fresh destination namespaces: register the
   repositories and auto-sync workflows in the kubernetes store, start K replicas of
   ``python -m slipway controller --shards S`` (K = 1, then 3), each with its own identity and
   SLIPWAY_HOME, and time until every workflow is ``synced`` at its repository's head (read from
   the Workflows' status twice a second).
   P6.sync_all_1 / P6.sync_all_3: those times. P6.peak_rss_1 / P6.peak_rss_3: VmHWM of the replica
   (the largest of the three). P6.shard_spread: most minus fewest shards a replica holds once
   all are synced (0 or 1 is even); the shards and syncs per replica are kept with it.
3. P7.failover (with three replicas): kill -9 of the replica holding the most shards, then at once
   a commit changing the ConfigMap of one workflow of each of its shards; seconds from the kill
   until every one of them shows the new value. P7.leases: seconds until none of its shard Leases
   names it any more.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from slipway.engine import Engine
from slipway.errors import SlipwayError
from slipway.kube import Kube
from slipway.kube import leases as lease_verbs
from slipway.shards import shard_of
from slipway.source import GitSource
from slipway.store.kubernetes import KubernetesStore, install
from slipway.store.kubernetes.names import WORKFLOWS

from . import metrics
from .controller_runs import _cluster_cpu, _stop, make_repos
from .namespaces import Namespaces, run_id
from .report import Figure
from .workload import GitRepo, app_objects, configmap, dump

log = logging.getLogger("bench")


@dataclass
class Params:
    workflows: int
    repos: int
    runs: int
    kubeconfig: Path
    tmp: Path
    shards: int = 6
    replicas: int = 3
    poll_interval: str = "30s"
    concurrency: int = 16
    dest_namespaces: int = 25
    sync_timeout: float = 900.0
    cleanup_timeout: float = 600.0
    wait_after_last: bool = False


def figures(p: Params) -> dict[str, Figure]:
    note = f"{p.workflows} workflows x 4 objects over {p.repos} repositories; --shards {p.shards}"
    f = [
        Figure("P6.sync_all_1", "kubernetes store, 1 replica: all synced, cold", "s", note=note),
        Figure("P6.sync_all_3", f"kubernetes store, {p.replicas} replicas: all synced, cold", "s", note=note),
        Figure("P6.peak_rss_1", "1 replica: peak RSS (VmHWM)", "MiB", target=300.0),
        Figure("P6.peak_rss_3", f"{p.replicas} replicas: largest peak RSS", "MiB", target=300.0),
        Figure("P6.shard_spread", "shards per replica, most minus fewest", "shards", target=1.0),
        Figure(
            "P7.failover",
            "kill -9 of a replica: its workflows served again",
            "s",
            target=20.0,
            note="a commit to one workflow per shard it held, pushed at the kill",
        ),
        Figure("P7.leases", "kill -9: its shard Leases held by others", "s"),
    ]
    return {x.key: x for x in f}


def _register(engine: Engine, p: Params, repos: list[GitRepo], members: dict[int, list[int]], ns: list[str]) -> None:
    def one(j: int) -> None:
        rid = engine.register_repository({"id": f"r{j:03d}", "url": repos[j].url, "poll_interval": p.poll_interval}).id
        for i in members[j]:
            engine.create_workflow({
                "id": f"wf-{i:04d}", "repository": rid, "target_path": f"apps/wf-{i:04d}", "auto_sync": True,
                "destination": {"namespace": ns[j % len(ns)], "kubeconfig": str(p.kubeconfig)},
            })  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(len(repos))))


def _synced(store: KubernetesStore, heads: dict[str, str]) -> int:
    """Workflows synced at their repository's head, from one list of the Workflows."""
    done = 0
    for obj in store.kube.list(WORKFLOWS, store.namespace):
        status = obj.get("status") or {}
        repo = (obj.get("spec") or {}).get("repository")
        if status.get("status") == "synced" and status.get("appliedRevision") == heads.get(str(repo)):
            done += 1
    return done


def _holders(kube: Kube, namespace: str) -> dict[str, str]:
    return {r.name: r.holder for r in lease_verbs.list_leases(kube, namespace, "slipway.dev/lease=shard")}


def _start(p: Params, env: dict[str, str], tmp: Path, identity: str) -> subprocess.Popen[bytes]:
    home = tmp / f"home-{identity}"
    home.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "slipway", "controller", "--shards", str(p.shards), "--identity", identity,
            "--concurrency", str(p.concurrency)]  # fmt: skip
    with open(tmp / f"{identity}.log", "ab") as out:
        return subprocess.Popen(argv, env={**env, "SLIPWAY_HOME": str(home)}, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _syncs(log_path: Path) -> int:
    try:
        return sum(1 for line in log_path.read_text(errors="replace").splitlines() if " started (auto)" in line)
    except OSError:
        return 0


def one_run(p: Params, index: int, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]) -> None:
    run = run_id()
    tmp = p.tmp / f"replicas-{run}"
    tmp.mkdir(parents=True)
    spaces = Namespaces(kube, run)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        say(f"  P6 making {p.repos} repositories for {p.workflows} workflows")
        repos, members = make_repos(p.workflows, p.repos, tmp)
        heads = {f"r{j:03d}": repo.head() for j, repo in enumerate(repos)}
        install.install_crds(kube)
        for count in (1, p.replicas):
            phase = f"{run}-{count}"
            state_ns = f"bench-p6-{phase}"
            dest = [f"bench-p6-{phase}-{k:02d}" for k in range(min(p.dest_namespaces, p.repos))]
            spaces.create([state_ns, *dest])
            store = KubernetesStore(namespace=state_ns)
            engine = Engine(store, GitSource(cache_dir=tmp / f"git-{phase}", home=tmp / f"home-{phase}"))
            started = time.monotonic()
            _register(engine, p, repos, members, dest)
            say(f"  P6 registered {p.workflows} workflows in {time.monotonic() - started:.0f}s; starting {count} "
                f"replica(s) of `slipway controller --shards {p.shards}`")  # fmt: skip
            env = {**os.environ, "SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": state_ns,
                   "KUBECONFIG": str(p.kubeconfig)}  # fmt: skip
            scraped, cluster0 = metrics.scrape(kube), _cluster_cpu()
            started = time.monotonic()
            procs = {f"replica-{k}": _start(p, env, tmp / phase, f"replica-{k}") for k in range(count)}
            done = 0
            while time.monotonic() - started < p.sync_timeout:
                time.sleep(0.5)
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with {proc.returncode}")
                done = _synced(store, heads)
                if done == p.workflows:
                    break
            took = time.monotonic() - started
            served = metrics.requests(scraped, metrics.scrape(kube))
            cluster_cpu = {k: round(v - cluster0.get(k, 0.0), 1) for k, v in _cluster_cpu().items()}
            replica_cpu = {n: round(metrics.cpu_times(pr.pid).total, 1) for n, pr in procs.items()}
            rss = {n: round(metrics.proc_status(pr.pid)["VmHWM"] / 1024, 1) for n, pr in procs.items()}
            held = Counter(h for h in _holders(kube, state_ns).values() if h)
            syncs = {n: _syncs(tmp / phase / f"{n}.log") for n in procs}
            figs[f"P6.sync_all_{1 if count == 1 else 3}"].add(
                took, complete=done == p.workflows, synced=done, shards=dict(held), syncs=syncs,
                api_requests=served, cluster_cpu_seconds=cluster_cpu, replica_cpu_seconds=replica_cpu,
            )  # fmt: skip
            figs[f"P6.peak_rss_{1 if count == 1 else 3}"].add(max(rss.values()), per_replica=rss)
            say(f"  P6 {count} replica(s): {done}/{p.workflows} synced in {took:.1f}s; shards {dict(held)}; "
                f"syncs {syncs}; peak RSS {rss} MiB")  # fmt: skip
            if count == 1:
                for proc in procs.values():
                    _stop(proc)
                continue
            # Shards settle within a few rounds of the election once every replica is up.
            until = time.monotonic() + 60
            while time.monotonic() < until and sorted(held.values()) != _even(p.shards, count):
                time.sleep(1)
                held = Counter(h for h in _holders(kube, state_ns).values() if h)
            counts = [held.get(n, 0) for n in procs]
            figs["P6.shard_spread"].add(max(counts) - min(counts), shards=dict(held))
            _failover(p, figs, kube, say, state_ns, procs, repos, members, dest)
            for proc in procs.values():
                _stop(proc)
    finally:
        for proc in procs.values():
            _stop(proc)
        last = index == p.runs - 1
        try:
            spaces.delete_all(wait=0.0 if last and not p.wait_after_last else p.cleanup_timeout)
        except SlipwayError as e:
            log.warning("cleanup: %s", e)
        shutil.rmtree(tmp, ignore_errors=True)


def _even(shards: int, replicas: int) -> list[int]:
    base, extra = divmod(shards, replicas)
    return sorted([base + 1] * extra + [base] * (replicas - extra))


def _failover(
    p: Params, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None], state_ns: str,
    procs: dict[str, subprocess.Popen[bytes]], repos: list[GitRepo], members: dict[int, list[int]], dest: list[str],
) -> None:  # fmt: skip
    holders = _holders(kube, state_ns)
    held = Counter(h for h in holders.values() if h)
    victim = max(sorted(held), key=lambda n: held[n])
    shards = sorted(int(name.rsplit("-", 1)[1]) for name, h in holders.items() if h == victim)
    # One workflow of each shard it held; one commit per repository they live in.
    chosen: dict[int, tuple[int, int]] = {}
    for j in range(p.repos):
        for i in members[j]:
            s = shard_of(f"wf-{i:04d}", p.shards)
            if s in shards and s not in chosen:
                chosen[s] = (j, i)
    rev = f"failover-{run_id()}"
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    for j in sorted({j for j, _ in chosen.values()}):
        files = {f"apps/wf-{i:04d}/app.yaml": dump([configmap(f"w{i:04d}-cm", rev), *app_objects(f"w{i:04d}")[1:]])
                 for jj, i in chosen.values() if jj == j}  # fmt: skip
        repos[j].commit(files, f"bench commit {rev}")
    procs[victim].wait()
    cm_info = kube.discovery.lookup("v1", "ConfigMap")
    waiting = dict(chosen)
    leases_at = None
    while waiting and time.monotonic() - killed < 300:
        for s, (j, i) in list(waiting.items()):
            obj = kube.get(cm_info, dest[j % len(dest)], f"w{i:04d}-cm")
            if obj is not None and (obj.get("data") or {}).get("rev") == rev:
                del waiting[s]
        if leases_at is None and victim not in _holders(kube, state_ns).values():
            leases_at = time.monotonic() - killed
        time.sleep(0.1)
    took = time.monotonic() - killed
    while leases_at is None and time.monotonic() - killed < 120:
        if victim not in _holders(kube, state_ns).values():
            leases_at = time.monotonic() - killed
        time.sleep(0.1)
    if waiting:
        log.warning("P7: %d workflow(s) not served again after %.0fs", len(waiting), took)
    figs["P7.failover"].add(took, complete=not waiting, victim=victim, shards=shards, workflows=len(chosen))
    figs["P7.leases"].add(leases_at if leases_at is not None else float("nan"))
    say(f"  P7 kill -9 of {victim} (shards {shards}): its workflows served again after {took:.1f}s, "
        f"its Leases held by others after {leases_at or float('nan'):.1f}s")  # fmt: skip


__all__ = ["Params", "figures", "one_run"]
