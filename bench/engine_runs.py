"""P1 (first sync), P2 (no-op resync) and P3 (diff): slipway's Engine in this process, against kubectl
and the bare loop, on the same files, in the same run.

One run:

1. Make a real Git repository with N objects under ``apps/`` and four fresh namespaces: one for
   slipway with health checks on (as a user runs it), one for slipway with health off (the apply
   cost alone), one for kubectl, one for the bare loop.
2. P1: each contender applies the N objects into its namespace (in an order rotated from run to
   run); after each one the bench waits, untimed, until its Deployments are available, so the
   next contender does not share the machine with the controllers' catch-up.
3. P2: sync the health-on workflow again with nothing changed: time, and the writes the API
   server counted (see :func:`bench.metrics.writes`). Anchor: ``kubectl apply`` of the same files
   again.
4. P3: commit a change to 10 of the N objects; time ``Engine.plan`` against ``kubectl diff
   --server-side`` of the changed files on kubectl's namespace (where kubectl owns the fields).
5. Delete the namespaces.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway.engine import Engine
from slipway.kube import Kube
from slipway.plan.ownership import stamp
from slipway.results import SyncResult
from slipway.source import GitSource
from slipway.store import Store

from . import anchors, metrics, profiling
from .namespaces import Namespaces, run_id, wait_deployments_settled
from .report import Comparison, Figure
from .workload import GitRepo, Workload

log = logging.getLogger("bench")

CHANGED = 10  # P3: objects changed in Git
BASELINE_SECONDS = 1.5  # P2: the window in which other clients' writes are counted first


@dataclass
class Params:
    n: int
    runs: int
    kubeconfig: Path
    tmp: Path
    concurrency: int = 16  # slipway's default, and the bare loop's
    settle_timeout: float = 600.0
    phases: set[str] = field(default_factory=lambda: {"P1", "P2", "P3"})
    wait_after_last: bool = False  # wait for the last run's namespaces to go (another phase follows)
    profile: Path | None = None  # a directory for py-spy profiles (see bench.profiling)

    def profile_to(self, name: str) -> Path | None:
        return self.profile / name if self.profile is not None else None


def figures() -> dict[str, Figure]:
    f = [
        Figure(
            "P1.slipway",
            "first sync, health on (Engine.sync)",
            "s",
            comparisons=[
                Comparison("P1.kubectl", 0.5),
                Comparison("P1.bare", 1.3),
                Comparison("P1.kubectl_ready"),
                Comparison("P1.bare_ready"),
            ],
            note="fetch (clone) + render + plan + apply + wait for health of N objects",
        ),
        Figure(
            "P1.slipway_apply",
            "first sync, health off",
            "s",
            comparisons=[Comparison("P1.kubectl", 0.5), Comparison("P1.bare", 1.3)],
            note="the same sync with sync_policy.health_check.enabled = false",
        ),
        Figure("P1.kubectl", "kubectl apply --server-side", "s"),
        Figure(
            "P1.kubectl_ready",
            "kubectl apply + Deployments available",
            "s",
            note="kubectl apply, then one LIST of Deployments every 0.25s until all are available",
        ),
        Figure("P1.bare", "bare SSA loop (16 threads)", "s"),
        Figure(
            "P1.bare_ready",
            "bare SSA loop + Deployments available",
            "s",
            note="the bare loop, then one LIST of Deployments every 0.25s until all are available",
        ),
        Figure("P2.slipway", "no-op resync (Engine.sync)", "s", target=1.5, comparisons=[Comparison("P2.kubectl")]),
        Figure("P2.writes", "no-op resync: writes (API server)", "writes", target=0.0),
        Figure("P2.client_writes", "no-op resync: writes sent by slipway", "writes", target=0.0),
        Figure("P2.kubectl", "kubectl apply again (no-op)", "s"),
        Figure("P2.kubectl_writes", "kubectl apply again: writes (API server)", "writes"),
        Figure(
            "P3.slipway",
            f"diff, {CHANGED} of N changed (Engine.plan)",
            "s",
            comparisons=[Comparison("P3.kubectl", 0.3)],
        ),
        Figure("P3.kubectl", "kubectl diff --server-side", "s"),
    ]
    return {x.key: x for x in f}


class StageClock:
    """Seconds per sync stage, from the progress events the engine emits."""

    def __init__(self) -> None:
        self.marks: list[tuple[str, float]] = []

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "stage":
            self.marks.append((str(data.get("name")), time.perf_counter()))

    def stages(self, end: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for (name, at), (_, nxt) in zip(self.marks, [*self.marks[1:], ("end", end)], strict=True):
            out[name] = round(nxt - at, 3)
        return out


def _timed_sync(engine: Engine, wf: str, profile: Path | None = None) -> tuple[float, SyncResult, dict[str, float]]:
    clock = StageClock()
    with profiling.sampled(os.getpid(), profile):
        started = time.perf_counter()
        result = engine.sync(wf, progress=clock)
        end = time.perf_counter()
    took = end - started
    stages = {"before-fetch": round(clock.marks[0][1] - started, 3) if clock.marks else 0.0, **clock.stages(end)}
    if result.status != "succeeded":
        raise RuntimeError(f"slipway sync of {wf} did not succeed: {result.message}")
    return took, result, stages


def one_run(p: Params, index: int, figs: dict[str, Figure], kube: Kube, say: Callable[[str], None]) -> None:
    run = run_id()
    tmp = p.tmp / f"engine-{run}"
    tmp.mkdir(parents=True)
    workload = Workload.mixed(p.n)
    repo = GitRepo.create(tmp / "repo", workload.texts())
    home = tmp / "home"
    engine = Engine(Store(home=home), GitSource(cache_dir=tmp / "git", home=home), concurrency=p.concurrency)
    spaces = Namespaces(kube, run)
    ns = {c: f"bench-p1-{run}-{c}" for c in ("slipway", "apply", "kubectl", "bare")}
    try:
        spaces.create(ns.values())
        wf: dict[str, str] = {}
        for variant, health in (("slipway", True), ("apply", False)):
            repo_id = engine.register_repository({"url": repo.url}).id  # its own mirror: a cold first sync
            wf[variant] = engine.create_workflow(
                {
                    "name": f"bench-{variant}",
                    "repository": repo_id,
                    "target_path": "apps",
                    "destination": {"namespace": ns[variant], "kubeconfig": str(p.kubeconfig)},
                    "sync_policy": {"health_check": {"enabled": health}},
                }
            ).id
        apps_dir = repo.work / "apps"
        # slipway's health-on sync is what P2 and P3 work on; kubectl's namespace is what kubectl diff
        # compares with. The two other contenders only matter to P1.
        order = ["slipway", "apply", "kubectl", "bare"] if "P1" in p.phases else ["slipway", "kubectl"]
        order = order[index % len(order) :] + order[: index % len(order)]
        for contender in order:
            say(f"  P1 {contender}")
            if contender in ("slipway", "apply"):
                key = "P1.slipway" if contender == "slipway" else "P1.slipway_apply"
                took, result, stages = _timed_sync(engine, wf[contender], p.profile_to(f"{key}-run{index}"))
                figs[key].add(took, applied=result.metrics.resources_applied, stages=stages)
            elif contender == "kubectl":
                took = anchors.kubectl_apply(apps_dir, ns["kubectl"], p.kubeconfig)
                started = time.perf_counter()
                wait_deployments_settled(kube, [ns["kubectl"]], p.settle_timeout, every=0.25)
                figs["P1.kubectl"].add(took)
                figs["P1.kubectl_ready"].add(took + time.perf_counter() - started)
            else:
                stamped = [stamp(o, "bench-bare", "bench") for o in workload.objects]
                took = anchors.bare_apply(stamped, ns["bare"], p.kubeconfig, p.concurrency)
                started = time.perf_counter()
                wait_deployments_settled(kube, [ns["bare"]], p.settle_timeout, every=0.25)
                figs["P1.bare"].add(took)
                figs["P1.bare_ready"].add(took + time.perf_counter() - started)
            if not wait_deployments_settled(kube, [ns[contender]], p.settle_timeout):
                log.warning("deployments in %s did not settle within %.0fs", ns[contender], p.settle_timeout)

        if "P2" in p.phases:
            say("  P2 no-op resync")
            _noop(p, engine, wf["slipway"], apps_dir, ns["kubectl"], figs, kube)
        if "P3" in p.phases:
            say(f"  P3 diff with {CHANGED} changed")
            _diff(p, engine, wf["slipway"], workload, repo, apps_dir, ns["kubectl"], figs)
    finally:
        engine.store.close()
        last = index == p.runs - 1
        spaces.delete_all(wait=0.0 if last and not p.wait_after_last else p.settle_timeout)
        shutil.rmtree(tmp, ignore_errors=True)


def _noop(
    p: Params, engine: Engine, wf: str, apps_dir: Path, kubectl_ns: str, figs: dict[str, Figure], kube: Kube
) -> None:
    # What the cluster's other clients write meanwhile (the cluster is shared): the same filter over
    # an idle window as long as P2's target, just before.
    quiet = metrics.scrape(kube)
    time.sleep(BASELINE_SECONDS)
    background = metrics.writes(quiet, metrics.scrape(kube))
    slipway_kube = engine.kube_for(engine.workflow(wf))
    sent_before = dict(slipway_kube.counts)
    before = metrics.scrape(kube)
    took, result, stages = _timed_sync(engine, wf, p.profile_to(f"P2.slipway-run{len(figs['P2.slipway'].values)}"))
    after = metrics.scrape(kube)
    sent = {v: n - sent_before.get(v, 0) for v, n in slipway_kube.counts.items() if n - sent_before.get(v, 0)}
    client_writes = sum(sent.get(v, 0) for v in ("POST", "PUT", "PATCH", "DELETE"))
    server = metrics.writes(before, after)
    figs["P2.slipway"].add(took, applied=result.metrics.resources_applied, stages=stages, requests=sent)
    figs["P2.writes"].add(
        sum(server.values()),
        by_verb=server,
        dry_runs=metrics.dry_runs(before, after),
        background=background,
        background_seconds=BASELINE_SECONDS,
    )
    figs["P2.client_writes"].add(client_writes, requests=sent)

    before = metrics.scrape(kube)
    took = anchors.kubectl_apply(apps_dir, kubectl_ns, p.kubeconfig)
    after = metrics.scrape(kube)
    server = metrics.writes(before, after)
    figs["P2.kubectl"].add(took)
    figs["P2.kubectl_writes"].add(sum(server.values()), by_verb=server)


def _diff(
    p: Params,
    engine: Engine,
    wf: str,
    workload: Workload,
    repo: GitRepo,
    apps_dir: Path,
    kubectl_ns: str,
    figs: dict[str, Figure],
) -> None:
    touched = workload.change(CHANGED, rev="2")
    repo.commit(workload.texts(sorted(set(touched))), f"change {CHANGED} objects")
    with profiling.sampled(os.getpid(), p.profile_to(f"P3.slipway-run{len(figs['P3.slipway'].values)}")):
        started = time.perf_counter()
        plan = engine.plan(wf)
        took = time.perf_counter() - started
    summary = plan.summary()
    if summary["updated_resources"] != CHANGED:
        log.warning("slipway's plan shows %s, expected %d updates", summary, CHANGED)
    figs["P3.slipway"].add(took, summary=summary)
    took, shown = anchors.kubectl_diff(apps_dir, kubectl_ns, p.kubeconfig)
    if shown != CHANGED:
        log.warning("kubectl diff shows %d changed objects, expected %d", shown, CHANGED)
    figs["P3.kubectl"].add(took, changed=shown)


__all__ = ["CHANGED", "Params", "figures", "one_run"]
