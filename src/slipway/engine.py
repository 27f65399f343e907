"""The engine: the one object every front calls, wiring source, render, plan, apply, health and record.

It owns the state store and the Git source, hands out shared Kubernetes connections per
destination, and keeps one rule for every mutating operation: claim the workflow in the store
first (one sync or rollback per workflow at a time, across processes), then run the state machine
in :mod:`slipway.sync`, then release. Fronts (Python, Lua, CLI, controller) never reach past it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import render as render_stage
from . import resources, settings
from .catalog import Catalog
from .errors import (
    ConfigError,
    HeldBack,
    ManifestError,
    NotFoundError,
    SlipwayError,
    SyncInProgress,
)
from .events import EventBus
from .kube import Kube, connect
from .model import Repository, RetryPolicy, Workflow, new_id
from .plan.model import Plan
from .plan.planner import Planner
from .remove import RemoveRun
from .render import Manifest, RenderContext
from .render.options import render_options
from .results import SyncResult
from .retry import with_retry
from .rollback import RollbackRun
from .run import Progress, new_result
from .source import GitSource
from .store import StateStore, open_store
from .sync import SyncRun

log = logging.getLogger("slipway.engine")


class Engine(Catalog):
    def __init__(
        self,
        store: StateStore | None = None,
        source: GitSource | None = None,
        *,
        concurrency: int = 16,
        kube_factory: Callable[[str | None, str | None], Kube] = connect,
    ) -> None:
        self.store: StateStore = store or open_store()
        self.source = source or GitSource()
        self.concurrency = concurrency
        self._kube_factory = kube_factory
        self.events = EventBus()

    def removal_plan(self, workflow_id: str, cancel: threading.Event | None = None) -> Plan:
        """What ``remove --cascade`` would delete: the inventory planned as if Git declared nothing."""
        wf = self.store.get_workflow(workflow_id)
        everything = replace(wf, sync_policy=replace(wf.sync_policy, auto_prune=True, allow_empty=True))
        return self.planner(everything, self.kube_for(wf), cancel).plan([], self.store.inventory(wf.id), None)

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
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, "remove")
        result.actor = actor
        self._claim(wf, result, 0.0)
        cancel = cancel or threading.Event()
        try:
            plan = self.removal_plan(workflow_id, cancel)
            kube = self.kube_for(wf)
            RemoveRun(self, wf, repo, kube, result, cancel, self._watched(result, progress)).execute(
                plan, expected_plan
            )
            self._finished(result)
        finally:
            self.store.release(wf.id, result.id)
        if result.status == "succeeded":
            self.store.remove_workflow(workflow_id)
        return result

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
    ) -> str:
        """Bring the mirror up to date and return the branch's head; or return ``revision`` as it is.

        A revision someone already saw on the remote (the controller's check) needs no fetch of its
        own: materializing it fetches once if the mirror lacks it, and several workflows of one
        repository then share a single fetch.
        """
        if revision:
            return revision
        head = with_retry(
            lambda: self.source.fetch(repo), policy or RetryPolicy(), what=f"fetch {repo.id}", cancel=cancel
        )
        return head

    def render(self, wf: Workflow, repo: Repository, revision: str) -> list[Manifest]:
        """Materialize the workflow's path at ``revision`` and render it.

        A path that renders no object is an error naming what it holds (a typo in target_path,
        or files no renderer reads), unless the workflow allows an empty render.
        """
        where = f"repository {repo.id} at {revision[:12]}"
        context = RenderContext(
            workflow_id=wf.id,
            namespace=wf.destination.namespace,
            options=render_options(wf.id, wf.helm, wf.jsonnet),
            cache_dir=settings.helm_cache(),
            credentials=self.chart_credentials,
            discover=lambda: self.kube_for(wf).discovery.capabilities(),
        )
        tmp = Path(tempfile.mkdtemp(prefix="slipway-render-"))
        try:
            root = self.source.materialize(repo, revision, wf.target_path, tmp / "path")
            if render_stage.needs_whole_repository(root, context):
                whole = self.source.materialize(repo, revision, "", tmp / "repo")
                root = whole / wf.target_path if wf.target_path else whole
                context.repository_root = whole
            manifests = render_stage.render(root, label=wf.target_path, context=context)
            if not manifests and not wf.sync_policy.allow_empty:
                raise ManifestError(
                    f"target_path {wf.target_path or '/'!r} renders no objects; it holds {render_stage.contents(root)}",
                    hint="slipway renders *.yaml, *.yml and *.json files, kustomizations, Helm charts and "
                    "Jsonnet; set sync_policy.allow_empty = true if an empty path is meant",
                )
            return manifests
        except ManifestError as e:
            raise ManifestError(f"{where}: {e.message}", hint=e.hint) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def chart_credentials(self, url: str) -> tuple[str, str] | None:
        """The login for a chart repository: that of the registered repository of type helm whose URL is
        the longest prefix of ``url`` (on a path boundary); None when there is none or it has no credentials."""
        url = url.rstrip("/")
        best: Repository | None = None
        for repo in self.store.list_repositories():
            base = repo.url.rstrip("/")
            matches = repo.type == "helm" and (url == base or url.startswith(base + "/"))
            if matches and (best is None or len(base) > len(best.url.rstrip("/"))):
                best = repo
        creds = best.credentials if best is not None else None
        secret = creds and (creds.password or creds.token)
        return (creds.username or "", secret) if creds and secret else None

    def planner(self, wf: Workflow, kube: Kube, cancel: threading.Event | None = None) -> Planner:
        return Planner(kube, wf, instance=self.store.instance_id, concurrency=self.concurrency, cancel=cancel)

    def plan(self, workflow_id: str, *, revision: str | None = None, cancel: threading.Event | None = None) -> Plan:
        """What a sync would change now (generate_diff): fetch, render, plan; nothing is changed.

        ``revision``: plan that commit instead of the branch's head (self-heal plans what is live).
        """
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        revision = self.fetch(repo, revision, policy=wf.sync_policy.retry, cancel=cancel)
        manifests = self.render(wf, repo, revision)
        kube = self.kube_for(wf)
        return self.planner(wf, kube, cancel).plan(manifests, self.store.inventory(wf.id), revision)

    # -- sync and rollback ---------------------------------------------------------------------------

    def _claim(self, wf: Workflow, result: SyncResult, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                self.store.claim(wf.id, result.id)
                return
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
    ) -> SyncResult:
        """Sync one workflow; the recorded result. SyncInProgress if another sync holds it past ``wait``.

        ``sync_id`` (from :meth:`new_sync_id`) lets a caller name the sync before it starts, to answer
        with it at once and follow it by its events; ``actor`` is who asked, kept in the history.

        ``expected_plan`` is a :meth:`Plan.fingerprint` a person approved: the sync refuses to apply
        anything else. An automatic trigger (anything but ``manual``) re-reads the workflow once it
        holds the claim, so a rollback that finished in the meantime wins: it never syncs the revision
        a rollback holds it away from (HeldBack), and ``self-heal`` restores the revision that is live.
        """
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, trigger)
        result.id, result.actor = sync_id or result.id, actor
        self._claim(wf, result, wait)
        cancel = cancel or threading.Event()
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
            self.store.release(wf.id, result.id)

    def _automatic_revision(
        self, wf: Workflow, repo: Repository, trigger: str, revision: str | None, cancel: threading.Event
    ) -> str:
        """The revision an automatic sync may apply, decided with the claim held; HeldBack if none."""
        state = self.store.workflow_state(wf.id)
        if trigger == "self-heal":
            if not state["applied_revision"]:
                raise HeldBack(f"workflow {wf.id}: nothing to heal to (no revision is live)")
            return str(state["applied_revision"])
        revision = revision or self.fetch(repo, policy=wf.sync_policy.retry, cancel=cancel)
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
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, "manual", kind="rollback")
        result.id, result.actor = sync_id or result.id, actor
        self._claim(wf, result, wait)
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
        history = self.store.history(wf.id, kind="sync")
        live = [s for s in history if not s.rolled_back and s.status != "running"]
        if not live:
            raise NotFoundError(f"workflow {wf.id} has no sync to roll back")
        from_sync = live[0]
        if to is not None:
            target = next((s for s in live if s.id == to), None)
            if target is None or target.status != "succeeded":
                raise NotFoundError(f"workflow {wf.id} has no successful sync {to!r} to roll back to")
        else:
            target = next((s for s in live[1:] if s.status == "succeeded"), None)
        rolled = live[: live.index(target)] if target is not None else live
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
        return resources.of_plan(self.plan(workflow_id, cancel=cancel), manifests=manifests)

    # -- slipway's own objects in a cluster (the kubernetes store) --------------------------------------

    @staticmethod
    def install_manifests(
        namespace: str | None = None, targets: tuple[str, ...] = (), cluster_wide: bool = False
    ) -> list[dict[str, Any]]:
        """The CRDs, namespace and RBAC ``slipway install`` applies (``--print`` writes them)."""
        from .store.kubernetes import install, names

        return install.manifests(namespace or names.namespace(), targets, cluster_wide)

    @staticmethod
    def install(namespace: str | None = None, targets: tuple[str, ...] = (), cluster_wide: bool = False) -> list[str]:
        """Apply :meth:`install_manifests` to the cluster of ``KUBECONFIG``; refuses to downgrade a CRD."""
        from .store.kubernetes import install, names

        return install.install(connect(), namespace or names.namespace(), targets, cluster_wide)

    @staticmethod
    def migrate(to: str, home: Path | None = None, say: Callable[[str], None] = lambda _: None) -> dict[str, int]:
        """Copy the SQLite store of ``home`` into the store ``to`` names (``kubernetes``); idempotent."""
        if to != "kubernetes":
            raise ConfigError(f"--to: {to!r}: slipway migrates a SQLite store to kubernetes")
        from .store import Store
        from .store.kubernetes import KubernetesStore
        from .store.kubernetes.migrate import migrate

        home = home or settings.home()
        if not (home / "state.db").is_file():
            raise ConfigError(f"there is no SQLite store to migrate in {home} (set SLIPWAY_HOME, or --home)")
        source = Store(home=home)
        try:
            return migrate(source, KubernetesStore(), say)
        finally:
            source.close()

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


def _quiet(event: str, data: dict[str, Any]) -> None:
    del event, data


__all__ = ["Engine"]
