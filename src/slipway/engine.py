"""The engine: the one object every front calls, wiring source, render, plan, apply, health and record.

It owns the state store and the Git source, hands out shared Kubernetes connections per
destination, and keeps one rule for every mutating operation: claim the workflow in the store
first (one sync or rollback per workflow at a time, across processes), then run the state machine
in :mod:`slipway.sync`, then release. Fronts (Python, Lua, CLI, controller) never reach past it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import installation
from .actions.service import Operations
from .errors import (
    ConfigError,
    DecryptionError,
    HeldBack,
    NotFoundError,
    SlipwayError,
    SyncInProgress,
)
from .events import EventBus
from .health import customizations
from .model import Repository, RetryPolicy, Workflow, new_id
from .pushes import Replicas
from .rendering import Rendering, undecryptable
from .results import SyncResult
from .retry import with_retry
from .source import GitSource
from .store import StateStore, open_store
from .store.protocol import ClaimLoss

# The stages (render, plan, apply, health) are imported where they are first used: a command pays
# for what it runs, and the way to the cluster's first request stays short.
if TYPE_CHECKING:
    from .kube import Kube
    from .plan.model import Plan
    from .plan.planner import Planner
    from .run import Progress
    from .store.protocol import SessionRows  # noqa: F401  (the server's session table names it through the engine)

log = logging.getLogger("slipway.engine")


class Engine(Rendering, Operations):
    def __init__(
        self,
        store: StateStore | None = None,
        source: GitSource | None = None,
        *,
        concurrency: int = 16,
        kube_factory: Callable[[str | None, str | None], Kube] | None = None,
    ) -> None:
        self.store: StateStore = store or open_store()
        self.source = source or GitSource()
        self.concurrency = concurrency
        self._kube_factory = kube_factory or _connect
        self.events = EventBus()
        self.replicas = Replicas(self.store)  # what processes sharing the store tell each other
        # Health scripts kept in the store's ConfigMaps (the kubernetes store has them) join every health.
        customizations.configure(configmaps=getattr(self.store, "health_customizations", None))

    def removal_plan(self, workflow_id: str, cancel: threading.Event | None = None) -> Plan:
        """What ``remove --cascade`` would delete: the inventory planned as if Git declared nothing, and
        the runs its resource hooks left (see :func:`.remove.hook_runs`)."""
        from .remove import hook_runs

        wf = self.store.get_workflow(workflow_id)
        everything = replace(wf, sync_policy=replace(wf.sync_policy, auto_prune=True, allow_empty=True))
        kube = self.kube_for(wf)
        runs = hook_runs(kube, wf.id, self.store.instance_id, self.store.history(wf.id, kind="sync"),
                         wf.sync_policy.retry, cancel)  # fmt: skip
        return self.planner(everything, kube, cancel).plan([], {**runs, **self.store.inventory(wf.id)}, None)

    def remove_workflow(
        self,
        workflow_id: str,
        *,
        cascade: bool = False,
        expected_plan: str | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        actor: str | None = None,
    ) -> SyncResult | None:
        """Forget a workflow (its history stays, marked removed); ``cascade`` first deletes what it owns.

        A cascade that fails leaves the workflow in place, so it can be tried again.
        """
        if not cascade:
            self.store.remove_workflow(workflow_id)
            return None
        from .remove import RemoveRun
        from .run import new_result

        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, "remove")
        result.actor = actor
        cancel = self._claim(wf, result, 0.0, cancel)
        try:
            plan = self.removal_plan(workflow_id, cancel)
            kube = self.kube_for(wf)
            RemoveRun(self, wf, repo, kube, result, cancel, self._watched(result, progress)).execute(
                plan, expected_plan
            )
            self._finished(result)
        finally:
            cancel.stop()
            self.store.release(wf.id, result.id)
        if result.status == "succeeded":
            self.store.remove_workflow(workflow_id)
        return result

    def warm_up(self, workflow_id: str) -> None:
        """Connect to the workflow's cluster in the background while Git and the render run (:mod:`.warmup`)."""
        from .warmup import warm_up

        warm_up(self.store, self.kube_for, workflow_id)

    # -- the pipeline's first stages ------------------------------------------------------------------

    def kube_for(self, wf: Workflow) -> Kube:
        kubeconfig = wf.destination.kubeconfig
        if wf.destination.kubeconfig_secret:
            # Only a store in the cluster has Secrets to read it from (the kubernetes store).
            materialize = getattr(self.store, "kubeconfig_file", None)
            if materialize is None:
                raise ConfigError(
                    f"workflow {wf.id}: destination.kubeconfig_secret needs the kubernetes store "
                    "(SLIPWAY_STORE=kubernetes); give destination.kubeconfig, a file, instead"
                )
            kubeconfig = str(materialize(wf.destination.kubeconfig_secret))
        return self._kube_factory(kubeconfig, wf.destination.context)

    def shard_elector(self, shards: int, identity: str | None = None) -> Any:
        """A shard elector for a replica of the controller (:mod:`slipway.shards`); it needs Leases and
        shared state, so the kubernetes store."""
        make = getattr(self.store, "elector", None)
        if make is None:
            raise ConfigError(
                "--shards: replicas share workflows through the cluster; set SLIPWAY_STORE=kubernetes "
                "(see docs/kubernetes.md)"
            )
        return make(shards, identity)

    def fetch(
        self,
        repo: Repository,
        revision: str | None = None,
        *,
        cancel: threading.Event | None = None,
        policy: RetryPolicy | None = None,
        workflow: Workflow | None = None,
    ) -> str:
        """Bring the mirror up to date and return the branch's head; or return ``revision`` as it is.

        A revision someone already saw on the remote (the controller's check) needs no fetch of its
        own: materializing it fetches once if the mirror lacks it, and several workflows of one
        repository then share a single fetch. For a ``workflow``, its revision: the chart version in
        range for a repository of type helm, and the commit of each values repository after it
        (:mod:`.workflowrev`), the heads' for what ``revision`` does not name.
        """
        from .workflowrev import compose, parse, values_repositories

        policy = policy or RetryPolicy()
        if workflow is None:
            return revision or with_retry(lambda: self.source.fetch(repo), policy, what=f"fetch {repo.id}",
                                          cancel=cancel)  # fmt: skip
        main, values = parse(revision) if revision else ("", {})
        if not main and repo.type == "helm":
            main = with_retry(lambda: self.chart_revision(workflow, repo), policy, what=f"fetch {repo.id}",
                              cancel=cancel)  # fmt: skip
        elif not main:
            main = with_retry(lambda: self.source.fetch(repo), policy, what=f"fetch {repo.id}", cancel=cancel)
        for rid in values_repositories(workflow):
            if rid not in values:
                other = self.store.get_repository(rid)
                values[rid] = with_retry(lambda r=other: self.source.fetch(r), policy, what=f"fetch {rid}",  # type: ignore[misc]
                                         cancel=cancel)  # fmt: skip
        return compose(main, values)

    def plan_local(self, workflow_id: str, directory: str | Path, *, cancel: threading.Event | None = None) -> Plan:
        """What a sync would change if Git held ``directory`` at the workflow's path: a pull request's
        change, before it merges, against the live objects and the inventory. Nothing is recorded."""
        wf = self.store.get_workflow(workflow_id)
        try:
            manifests = self.render_local(wf, directory, cancel)
        except DecryptionError as e:
            return undecryptable(wf.id, None, e)
        kube = self.kube_for(wf)
        return self.planner(wf, kube, cancel).plan(manifests, self.store.inventory(wf.id), None)

    def resolve_revision(self, workflow_id: str, ref: str) -> str:
        """The commit a branch, tag or commit of the workflow's repository names (``diff --revision``)."""
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        if repo.type == "helm":  # a chart version names a revision of the chart
            return self.chart_revision(replace(wf, chart_version=ref.lstrip("v")), repo)
        return with_retry(lambda: self.source.revision(repo, ref), wf.sync_policy.retry, what=f"fetch {ref}")

    def planner(
        self, wf: Workflow, kube: Kube, cancel: threading.Event | None = None, *, local_checks: bool = False
    ) -> Planner:
        from .plan.planner import Planner

        return Planner(
            kube, wf, instance=self.store.instance_id, concurrency=self.concurrency, cancel=cancel,
            local_checks=local_checks,
            # The kubernetes store's namespace holds slipway's state and its admin's configuration.
            own_namespace=getattr(self.store, "namespace", None),
        )  # fmt: skip

    def plan(
        self,
        workflow_id: str,
        *,
        revision: str | None = None,
        cancel: threading.Event | None = None,
        local_checks: bool = False,
    ) -> Plan:
        """What a sync would change now (generate_diff): fetch, render, plan; nothing is changed.

        ``revision``: plan that commit instead of the branch's head (self-heal plans what is live).
        ``local_checks``: check new objects against the server's schemas here, as a sync does,
        instead of a server dry-run each.
        """
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        revision = self.fetch(repo, revision, policy=wf.sync_policy.retry, cancel=cancel, workflow=wf)
        try:
            manifests = self.render(wf, repo, revision, cancel)
        except DecryptionError as e:
            return undecryptable(wf.id, revision, e)
        kube = self.kube_for(wf)
        planner = self.planner(wf, kube, cancel, local_checks=local_checks)
        return planner.plan(manifests, self.store.inventory(wf.id), revision)

    # -- sync and rollback ---------------------------------------------------------------------------

    def _claim(self, wf: Workflow, result: SyncResult, wait: float, cancel: threading.Event | None) -> ClaimLoss:
        """Claim the workflow; the run's own cancel event is returned: set by ``cancel`` (shared, maybe,
        with other runs) and by the store when the claim is lost. ``stop()`` it when the run is over."""
        deadline = time.monotonic() + wait
        lost = ClaimLoss()
        while True:
            try:
                self.store.claim(wf.id, result.id, lost)
                return lost.follow(cancel)
            except SyncInProgress:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def sync(
        self,
        workflow_id: str,
        *,
        trigger: str = "manual",
        revision: str | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        wait: float = 0.0,
        expected_plan: str | None = None,
        sync_id: str | None = None,
        actor: str | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        admin: bool = False,
        wait_health: bool = True,
    ) -> SyncResult:
        """Sync one workflow; the recorded result. SyncInProgress if another sync holds it past ``wait``.

        ``wait_health=False`` (``sync --no-wait``): recorded once applied, with the health it then has.
        ``sync_id`` (from :meth:`new_sync_id`) names the sync before it starts, so a caller can answer
        with it at once and follow its events; ``actor`` is who asked, kept in the history.

        ``expected_plan`` is a :meth:`Plan.fingerprint` a person approved: the sync refuses to apply
        anything else. ``on_plan`` is called with the plan once it is computed, before anything is
        applied (a front shows it: one plan per sync, not a preview and then the sync's own). An
        automatic trigger (anything but ``manual``) re-reads the workflow once it holds the claim, so
        a rollback that finished in the meantime wins: it never syncs the revision a rollback holds
        it away from (HeldBack), and ``self-heal`` restores the revision that is live.

        A ``manual`` sync of an explicit ``revision`` must find it on the tracked branch, or among
        what this workflow applied before; anything else needs ``admin`` and is recorded as such
        (:mod:`.revisions`), else NotPermitted and nothing starts.
        """
        from .run import new_result
        from .sync import SyncRun

        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, trigger)
        result.id, result.actor = sync_id or result.id, actor
        if revision and trigger == "manual":
            from .revisions import admit, admit_composite
            from .workflowrev import values_repositories

            if repo.type == "helm" or ";" in revision or values_repositories(wf):
                chart = lambda version: self.chart_revision(replace(wf, chart_version=version), repo)  # noqa: E731
                revision, result.reason = admit_composite(self.source, self.store, wf, repo, revision, admin=admin,
                                                          actor=actor, chart_revision=chart)  # fmt: skip
            else:
                revision, result.reason = admit(
                    self.source, self.store, wf, repo, revision, admin=admin, actor=actor, cancel=cancel
                )
        cancel = self._claim(wf, result, wait, cancel)
        try:
            if trigger != "manual":
                revision = self._automatic_revision(wf, repo, trigger, revision, cancel)
            try:
                kube = self.kube_for(wf)
            except SlipwayError as e:  # no cluster to sync to (a bad kubeconfig or context): on the record too
                self.record_failure(wf.id, trigger, e, result)
                self._finished(result)
                return result
            run = SyncRun(self, wf, repo, kube, result, cancel, self._watched(result, progress))
            run.on_plan, run.wait_final_health = on_plan, wait_health
            run.execute(revision, expected_plan)
            self._finished(result)
            if run.wants_rollback:
                # Decided here, while the claim is still ours: nothing can start in between.
                rb = self._rollback_claimed(
                    wf, repo, kube, reason=f"automatic rollback: {result.message.removeprefix('Sync failed: ')}",
                    cancel=cancel, progress=progress,
                )  # fmt: skip
                run.rolled_back(rb)
                self._finished(result)
            return result
        finally:
            cancel.stop()
            self.store.release(wf.id, result.id)

    def local_admin(self) -> bool:
        """Whether this process's OS user is the state store's admin (:func:`.revisions.local_admin`)."""
        from .revisions import local_admin

        return local_admin(self.store)

    def _automatic_revision(
        self, wf: Workflow, repo: Repository, trigger: str, revision: str | None, cancel: threading.Event
    ) -> str:
        """The revision an automatic sync may apply, decided with the claim held; HeldBack if none."""
        state = self.store.workflow_state(wf.id)
        if trigger == "self-heal":
            if not state["applied_revision"]:
                raise HeldBack(f"workflow {wf.id}: nothing to heal to (no revision is live)")
            return str(state["applied_revision"])
        revision = revision or self.fetch(repo, policy=wf.sync_policy.retry, cancel=cancel, workflow=wf)
        if state["hold_revision"] and revision == state["hold_revision"]:
            raise HeldBack(f"workflow {wf.id}: rolled back from {revision[:12]}; auto-sync waits for a newer commit")
        if revision == state["applied_revision"] and state["status"] == "synced":
            # Another process (a replica that held the shard a moment ago) synced it since we looked.
            raise HeldBack(f"workflow {wf.id}: {revision[:12]} is applied already")
        return revision

    def rollback(
        self,
        workflow_id: str | None,
        reason: str = "",
        *,
        to: str | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        wait: float = 0.0,
        sync_id: str | None = None,
        actor: str | None = None,
    ) -> SyncResult:
        if not workflow_id:
            raise NotFoundError("rollback: no workflow id given")
        from .run import new_result

        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, "manual", kind="rollback")
        result.id, result.actor = sync_id or result.id, actor
        cancel = self._claim(wf, result, wait, cancel)
        try:
            kube = self.kube_for(wf)
            return self._rollback_claimed(
                wf,
                repo,
                kube,
                reason=reason or "manual rollback",
                to=to,
                cancel=cancel,
                progress=progress,
                result=result,
            )
        finally:
            cancel.stop()
            self.store.release(wf.id, result.id)

    def _rollback_claimed(
        self,
        wf: Workflow,
        repo: Repository,
        kube: Kube,
        *,
        reason: str,
        to: str | None = None,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        result: SyncResult | None = None,
    ) -> SyncResult:
        from .rollback import RollbackRun, choose
        from .run import new_result

        from_sync, target, rolled = choose(wf.id, self.store.history(wf.id, kind="sync"), to)
        result = result or new_result(wf, "auto", kind="rollback")
        run = RollbackRun(self, wf, repo, kube, result, cancel or threading.Event(), self._watched(result, progress))
        run.execute(from_sync, target, rolled, reason)
        self._finished(result)
        return result

    @staticmethod
    def new_sync_id(kind: str = "sync") -> str:
        """An id for a sync (or rollback) about to start: see ``sync_id`` of :meth:`sync`."""
        return new_id("sync" if kind == "sync" else "rollback")

    def resources(
        self, workflow_id: str, cancel: threading.Event | None = None, *, manifests: bool = False
    ) -> list[dict[str, Any]]:
        """Every object the workflow declares or owns, with its sync state and health, as planned now;
        with ``manifests``, each with its live and desired YAML too (Secret values masked)."""
        return self.resources_of(self.plan(workflow_id, cancel=cancel), manifests=manifests)

    @staticmethod
    def resources_of(plan: Plan, *, manifests: bool = False) -> list[dict[str, Any]]:
        """The table of :meth:`resources` for a plan already made (the server keeps its last one)."""
        from .resources import of_plan

        return of_plan(plan, manifests=manifests)

    # ``slipway health check`` and ``--customizations``: health offline, the process's script directories
    health_of = staticmethod(customizations.judge_offline)
    use_customizations = staticmethod(customizations.configure)

    def assess(
        self,
        workflow_id: str,
        cancel: threading.Event | None = None,
        *,
        inventory: dict[Any, str] | None = None,
        rendered: tuple[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        """Sync status and health computed now and stored with when (:mod:`slipway.axes`); nothing is applied.
        ``inventory`` and ``rendered``: what a run about to record itself will own, and its render."""
        from . import axes

        result = axes.compute(self, workflow_id, cancel, inventory, rendered)
        with contextlib.suppress(NotFoundError):  # removed meanwhile
            self.store.set_workflow_state(workflow_id, assessment=axes.summary(result))
        self.events.publish("assessed", {"workflow": workflow_id, **axes.summary(result)})
        return result

    def refresher(self, mine: Callable[[str], bool], cancel: threading.Event) -> Any:
        """The controller's refresh of sync status and health (:class:`slipway.assessor.Assessor`)."""
        from .assessor import Assessor

        return Assessor(self, mine, cancel)

    def report(self, workflow_id: str, *, live: bool = True, cancel: threading.Event | None = None) -> dict[str, Any]:
        """The status table with the two axes and the last operation (:func:`slipway.axes.report`)."""
        from . import axes

        return axes.report(self, workflow_id, live=live, cancel=cancel)

    # slipway's own objects in a cluster, for ``slipway install`` and ``slipway migrate`` (:mod:`.installation`)
    install_manifests = staticmethod(installation.manifests)
    install = staticmethod(installation.install)
    migrate = staticmethod(installation.migrate)

    def _watched(self, result: SyncResult, progress: Progress | None) -> Progress:
        """The run's progress, for its caller and for every subscriber of :attr:`events`."""
        about = {"workflow": result.workflow_id, "sync_id": result.id, "kind": result.kind}
        self.events.publish("started", {**about, "trigger": result.trigger})
        report = progress or _quiet

        def both(event: str, data: dict[str, Any]) -> None:
            report(event, data)
            self.events.publish(event, {**about, **data})

        return both

    def _finished(self, result: SyncResult) -> None:
        self.events.publish(
            "finished",
            {"workflow": result.workflow_id, "sync_id": result.id, "kind": result.kind, "status": result.status,
             "message": result.message, "revision": result.commit_hash},
        )  # fmt: skip


def _connect(kubeconfig: str | None, context: str | None) -> Kube:
    from .kube import connect  # the HTTP client loads when a cluster is first reached

    return connect(kubeconfig, context)


def _quiet(event: str, data: dict[str, Any]) -> None:
    del event, data


__all__ = ["Engine"]
