"""P4 (the controller with W workflows) and P5 (its peak memory), in a process of its own.

One run:

1. Make R real Git repositories; repository j holds the workflows i with i % R == j, each under
   its own ``apps/wf-NNNN/`` path with four objects (ConfigMap, Secret, Service, Deployment).
   Each repository's workflows deploy into one fresh namespace of its own.
2. Register the repositories (poll interval P) and the auto-sync workflows in a fresh
   SLIPWAY_HOME, then start ``python -m slipway controller --concurrency C`` with that home:
   a cold start, nothing cloned, nothing applied.
3. P4 sync-all: seconds from starting the process until every workflow is ``synced`` at its
   repository's head (read from the state store twice a second).
4. P4 idle: the process's CPU time (/proc/<pid>/stat utime+stime, and cutime+cstime for the git
   processes it ran) over an idle window, as a share of one core.
5. P4 latency: push a commit to one repository and poll the changed ConfigMap every 0.1 s until
   it shows the new value; a few commits, each to another repository.
6. P5: VmHWM of the process (/proc/<pid>/status) before it is stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from slipway.cluster import local
from slipway.durations import parse_duration
from slipway.engine import Engine
from slipway.errors import SlipwayError
from slipway.kube import Kube
from slipway.plan.ownership import stamp
from slipway.source import GitSource
from slipway.store import Store

from . import anchors, metrics, profiling
from .namespaces import Namespaces, run_id, wait_deployments_settled
from .report import Comparison, Figure
from .workload import GitRepo, app_objects, configmap, dump

log = logging.getLogger("bench")


@dataclass
class Params:
    workflows: int
    repos: int
    runs: int
    kubeconfig: Path
    tmp: Path
    poll_interval: str = "30s"
    concurrency: int = 48
    idle_seconds: float = 20.0
    latency_samples: int = 3
    sync_timeout: float = 900.0
    cleanup_timeout: float = 600.0
    wait_after_last: bool = False
    profile: Path | None = None  # a directory for py-spy profiles (see bench.profiling)


def figures(p: Params) -> dict[str, Figure]:
    poll = parse_duration(p.poll_interval)
    f = [
        Figure(
            "P4.sync_all",
            f"controller: {p.workflows} workflows synced, cold start",
            "s",
            target=60.0,
            comparisons=[Comparison("P4.bare_ready")],
            note=f"{p.workflows} workflows x 4 objects over {p.repos} repositories; --concurrency {p.concurrency}",
        ),
        Figure(
            "P4.bare_ready",
            f"bare SSA loop of the same {p.workflows * 4} objects + Deployments available",
            "s",
            note="the cluster's own floor for this workload: no Git, no render, no plan, no reads",
        ),
        Figure(
            "P4.idle_cpu",
            "controller idle CPU (own + git children)",
            "%",
            target=1.0,
            note=f"{p.idle_seconds:g}s window after all are synced; % of one core; poll interval {p.poll_interval}",
        ),
        Figure("P4.idle_cpu_own", "controller idle CPU (own threads only)", "%", target=1.0),
        Figure(
            "P4.commit_to_applied",
            f"commit to applied (poll {p.poll_interval})",
            "s",
            target=poll + 2.0,
            target_on="max",
            samples=f"commits ({p.latency_samples} per run)",
            note="push to one repository, then poll the changed ConfigMap every 0.1s",
        ),
        Figure("P5.peak_rss", "controller peak RSS (VmHWM)", "MiB", target=150.0),
    ]
    return {x.key: x for x in f}


def make_repos(workflows: int, count: int, tmp: Path) -> tuple[list[GitRepo], dict[int, list[int]]]:
    """``workflows`` workflows' files spread over ``count`` repositories (P4-P5 and P6-P7 alike)."""
    members: dict[int, list[int]] = {j: [] for j in range(count)}
    for i in range(workflows):
        members[i % count].append(i)

    def one(j: int) -> GitRepo:
        files = {f"apps/wf-{i:04d}/app.yaml": dump(app_objects(f"w{i:04d}")) for i in members[j]}
        return GitRepo.create(tmp / "repos" / f"r{j:03d}", files)

    with ThreadPoolExecutor(max_workers=4) as pool:
        repos = list(pool.map(one, range(count)))
    return repos, members


def _states(store: Store, wf_ids: list[str], heads: dict[str, str], wf_repo: dict[str, str]) -> dict[str, int]:
    out = {"synced": 0, "failed": 0, "other": 0}
    for wf in wf_ids:
        st = store.workflow_state(wf)
        if st["status"] == "synced" and st["applied_revision"] == heads[wf_repo[wf]]:
            out["synced"] += 1
        elif st["status"] in ("failed", "degraded"):
            out["failed"] += 1
        else:
            out["other"] += 1
    return out


def _stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def one_run(p: Params, index: int, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]) -> None:
    run = run_id()
    tmp = p.tmp / f"controller-{run}"
    tmp.mkdir(parents=True)
    spaces = Namespaces(kube, run)
    proc: subprocess.Popen[bytes] | None = None
    store: Store | None = None
    logfile = tmp / "controller.log"
    try:
        say(f"  P4 making {p.repos} repositories and {p.workflows} workflows")
        repos, members = make_repos(p.workflows, p.repos, tmp)
        _bare_floor(p, members, figs, kube, say)
        ns = [f"bench-p4-{run}-{j:03d}" for j in range(p.repos)]
        spaces.create(ns)
        home = tmp / "home"
        store = Store(home=home)
        engine = Engine(store, GitSource(cache_dir=home / "git", home=home))
        wf_ids: list[str] = []
        wf_repo: dict[str, str] = {}
        heads: dict[str, str] = {}
        repo_ids: list[str] = []
        for j, repo in enumerate(repos):
            rid = engine.register_repository({"id": f"r{j:03d}", "url": repo.url, "poll_interval": p.poll_interval}).id
            repo_ids.append(rid)
            heads[rid] = repo.head()
            for i in members[j]:
                wid = engine.create_workflow(
                    {
                        "id": f"wf-{i:04d}",
                        "repository": rid,
                        "target_path": f"apps/wf-{i:04d}",
                        "auto_sync": True,
                        "destination": {"namespace": ns[j], "kubeconfig": str(p.kubeconfig)},
                    }
                ).id
                wf_ids.append(wid)
                wf_repo[wid] = rid

        env = {
            **os.environ,
            "SLIPWAY_HOME": str(home),
            "SLIPWAY_GIT_CACHE": str(home / "git"),
            "KUBECONFIG": str(p.kubeconfig),
        }
        argv = [sys.executable, "-m", "slipway", "controller", "--concurrency", str(p.concurrency)]
        say(f"  P4 starting the controller ({' '.join(argv[1:])})")
        scraped = metrics.scrape(kube)
        cluster_cpu0 = _cluster_cpu()
        with open(logfile, "wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        cpu0 = metrics.cpu_times(proc.pid)
        deadline = started + p.sync_timeout
        states: dict[str, int] = {}
        time.sleep(0.5)  # py-spy needs a running interpreter to attach to
        with profiling.sampled(proc.pid, _profile(p, f"p4-sync-all-run{index}")):
            while True:
                time.sleep(0.5)
                if proc.poll() is not None:
                    raise RuntimeError(f"the controller exited with {proc.returncode}: {_tail(logfile)}")
                states = _states(store, wf_ids, heads, wf_repo)
                if states["synced"] == len(wf_ids) or time.monotonic() > deadline:
                    break
        took = time.monotonic() - started
        cpu1 = metrics.cpu_times(proc.pid)
        cluster_cpu = {k: round(v - cluster_cpu0.get(k, 0.0), 1) for k, v in _cluster_cpu().items()}
        served = metrics.requests(scraped, metrics.scrape(kube))
        complete = states["synced"] == len(wf_ids)
        if not complete:
            log.warning("P4: only %d of %d workflows synced after %.0fs", states["synced"], len(wf_ids), took)
        figs["P4.sync_all"].add(
            took,
            complete=complete,
            states=states,
            cpu_seconds_own=round(cpu1.own - cpu0.own, 2),
            cpu_seconds_children=round(cpu1.children - cpu0.children, 2),
            syncs=_syncs_started(logfile),
            api_requests=served,
            cluster_cpu_seconds=cluster_cpu,
        )
        say(f"  P4 all synced in {took:.1f}s; measuring idle CPU for {p.idle_seconds:g}s")

        time.sleep(2.0)
        syncs_before = _syncs_started(logfile)
        slices: list[float] = []
        with profiling.sampled(proc.pid, _profile(p, f"p4-idle-run{index}")):
            a = metrics.cpu_times(proc.pid)
            mark, end = a, a.at + p.idle_seconds
            while time.monotonic() < end:
                time.sleep(min(10.0, max(0.0, end - time.monotonic())))
                now = metrics.cpu_times(proc.pid)
                slices.append(round(metrics.cpu_share(mark, now)["total"], 2))
                mark = now
            b = metrics.cpu_times(proc.pid)
        share = metrics.cpu_share(a, b)
        figs["P4.idle_cpu"].add(
            share["total"],
            **{k: round(v, 2) for k, v in share.items()},
            per_10s=slices,
            syncs_in_window=_syncs_started(logfile) - syncs_before,
        )
        figs["P4.idle_cpu_own"].add(share["own"])

        cm_info = kube.discovery.lookup("v1", "ConfigMap")
        poll = parse_duration(p.poll_interval)
        rng = random.Random(f"{run}-latency")
        for k in range(p.latency_samples):
            j = (index * p.latency_samples + k) % p.repos
            i = members[j][0]
            rev = f"r{index}-{k}"
            # A commit lands at a random point of the repository's poll cycle, as a person's does:
            # without the pause, each commit would land at the same phase as the one before.
            pause = rng.uniform(0, poll)
            say(f"  P4 commit {k + 1}/{p.latency_samples} to repository {repo_ids[j]} in {pause:.1f}s")
            time.sleep(pause)
            files = {f"apps/wf-{i:04d}/app.yaml": dump([configmap(f"w{i:04d}-cm", rev), *app_objects(f"w{i:04d}")[1:]])}
            heads[repo_ids[j]] = repos[j].commit(files, f"bench commit {rev}")
            pushed = time.monotonic()
            seen = None
            while time.monotonic() - pushed < poll * 3 + 60:
                obj = kube.get(cm_info, ns[j], f"w{i:04d}-cm")
                if obj is not None and (obj.get("data") or {}).get("rev") == rev:
                    seen = time.monotonic()
                    break
                time.sleep(0.1)
            if seen is None:
                raise RuntimeError(f"commit {rev} to {repo_ids[j]} was not applied within {poll * 3 + 60:.0f}s")
            figs["P4.commit_to_applied"].add(seen - pushed, repository=repo_ids[j])
            # Let that sync finish (health) before the next commit.
            wid = f"wf-{i:04d}"
            until = time.monotonic() + 120
            while time.monotonic() < until:
                st = store.workflow_state(wid)
                if st["status"] == "synced" and st["applied_revision"] == heads[repo_ids[j]]:
                    break
                time.sleep(0.2)

        status = metrics.proc_status(proc.pid)
        figs["P5.peak_rss"].add(status["VmHWM"] / 1024, vm_rss_kib=status.get("VmRSS"))
    finally:
        if proc is not None:
            _stop(proc)
        if store is not None:
            store.close()
        last = index == p.runs - 1
        try:
            spaces.delete_all(wait=0.0 if last and not p.wait_after_last else p.cleanup_timeout)
        except SlipwayError as e:
            log.warning("cleanup: %s", e)
        shutil.rmtree(tmp, ignore_errors=True)


def _bare_floor(
    p: Params, members: dict[int, list[int]], figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]
) -> None:
    """P4.bare_ready: the same objects in as many fresh namespaces, sent by the bare loop, until every
    Deployment is available; then the namespaces are deleted and gone before the controller starts."""
    spaces = Namespaces(kube, run_id())
    ns = [f"bench-p4bare-{spaces.run}-{j:03d}" for j in range(p.repos)]
    objects = []
    for j, wfs in members.items():
        for i in wfs:
            for obj in app_objects(f"w{i:04d}"):
                obj = stamp(obj, "bench-bare", "bench")
                obj["metadata"]["namespace"] = ns[j]
                objects.append(obj)
    try:
        spaces.create(ns)
        say(f"  P4 floor: the bare loop applies {len(objects)} objects, then waits for the Deployments")
        cluster_cpu0 = _cluster_cpu()
        started = time.monotonic()
        anchors.bare_apply(objects, None, p.kubeconfig)
        settled = wait_deployments_settled(kube, ns, p.sync_timeout, every=0.5)
        took = time.monotonic() - started
        cluster_cpu = {k: round(v - cluster_cpu0.get(k, 0.0), 1) for k, v in _cluster_cpu().items()}
        if settled:
            figs["P4.bare_ready"].add(took, cluster_cpu_seconds=cluster_cpu)
        else:
            log.warning("P4 floor: the Deployments did not settle within %.0fs", p.sync_timeout)
    finally:
        spaces.delete_all(wait=p.cleanup_timeout)


def _cluster_cpu() -> dict[str, float]:
    """CPU seconds so far of each local control-plane process (where the machine's cores went)."""
    info = local.load()
    out: dict[str, float] = {}
    for proc in info.running() if info is not None else []:
        try:
            out[proc.name] = metrics.cpu_times(proc.pid).total
        except OSError:
            continue
    return out


def _syncs_started(logfile: Path) -> int:
    """Syncs the controller has started, from its log (one INFO line each)."""
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if " started (auto)" in line or " started (self-heal)" in line)


def _profile(p: Params, name: str) -> Path | None:
    return p.profile / name if p.profile is not None else None


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


__all__ = ["Params", "figures", "one_run"]
