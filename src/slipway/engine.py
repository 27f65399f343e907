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

from . import insight, settings
from . import render as render_stage
from .durations import rfc3339
from .errors import (
    ConfigError,
    HeldBack,
    ManifestError,
    NotFoundError,
    SlipwayError,
    SourceError,
    SyncInProgress,
    describe,
)
from .kube import Kube, connect
from .model import Repository, RetryPolicy, SyncResult, Workflow
from .plan.model import Plan
from .plan.planner import Planner
from .remove import RemoveRun
from .render import Manifest, RenderContext
from .render.options import render_options
from .retry import with_retry
from .rollback import RollbackRun
from .run import Progress, new_result
from .source import GitSource
from .store import StateStore, open_store
from .sync import SyncRun

log = logging.getLogger("slipway.engine")


class Engine:
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

    # -- repositories ------------------------------------------------------------------------------

    def register_repository(self, config: dict[str, Any]) -> Repository:
        repo = Repository.from_config(config)
        if repo.type == "helm":
            users = [wf.id for wf in self.store.list_workflows() if wf.repository == repo.id]
            if users:
                raise ConfigError(f"type: repository {repo.id} is read by workflow(s) {', '.join(users)}; it stays git")
        self.store.put_repository(repo)
        log.debug("registered repository %s (%s)", repo.id, repo.url)
        return repo

    def repository(self, repo_id: str) -> Repository:
        return self.store.get_repository(repo_id)

    def repositories(self) -> list[Repository]:
        return self.store.list_repositories()

    def remove_repository(self, repo_id: str) -> None:
        self.store.delete_repository(repo_id)
        self.source.forget(repo_id)

    # -- workflows ---------------------------------------------------------------------------------

    def create_workflow(self, config: dict[str, Any], *, exists_ok: bool = True) -> Workflow:
        """Create a workflow; with ``exists_ok`` (the declarative API) an existing id is replaced whole."""
        wf = Workflow.from_config(config)
        if not exists_ok and self.workflow_exists(wf.id):
            raise ConfigError(
                f"workflow {wf.id} already exists; change it with `slipway workflow set {wf.id} ...` "
                f"(see `slipway workflow show {wf.id}`)"
            )
        self._check_git_repository(wf)
        self.store.put_workflow(wf)
        return wf

    def _check_git_repository(self, wf: Workflow) -> None:
        known = {r.id: r for r in self.store.list_repositories()}
        if wf.repository in known and known[wf.repository].type == "helm":
            raise ConfigError(
                f"repository: {wf.repository} is a Helm chart repository; a workflow reads a Git repository "
                "(a chart from a chart repository is a dependency in a Chart.yaml)"
            )

    def workflow_exists(self, workflow_id: str) -> bool:
        try:
            self.store.get_workflow(workflow_id)
        except NotFoundError:
            return False
        return True

    def update_workflow(self, workflow_id: str, changes: dict[str, Any]) -> tuple[Workflow, Workflow]:
        """Change only the settings given (nested tables merged); returns the workflow before and after."""
        old = self.store.get_workflow(workflow_id)
        if "id" in changes and changes["id"] != workflow_id:
            raise ConfigError("id: a workflow's id cannot change; create a new workflow instead")
        new = Workflow.from_config(_merge(old.to_config(), changes))
        self._check_git_repository(new)
        self.store.put_workflow(new)
        return old, new

    def quick_workflow(self, config: dict[str, Any]) -> dict[str, Any]:
        """The seed's ``gitops.workflow{...}``: a repository and a workflow in one call.

        Both are validated before either is stored, so a bad key registers nothing.
        """
        cfg = dict(config or {})
        repo_cfg = {
            "url": cfg.pop("repo", None),
            "branch": cfg.pop("branch", None),
            "credentials": cfg.pop("credentials", None),
            "poll_interval": cfg.pop("poll_interval", None),
            "id": cfg.pop("repository_id", None),
        }
        if repo_cfg["url"] is None:
            raise ConfigError("repo: required (a Git URL, or owner/name on the default Git host)")
        repo = Repository.from_config({k: v for k, v in repo_cfg.items() if v is not None})
        wf = Workflow.from_config({**cfg, "repository": repo.id})
        self.store.put_repository(repo)
        self.store.put_workflow(wf)
        return {
            "workflow_id": wf.id,
            "repository_id": repo.id,
            "status": "created",
            "auto_sync": wf.auto_sync,
            "diff_preview": wf.diff_preview,
            "rollback_on_failure": wf.rollback_on_failure,
        }

    def workflow(self, workflow_id: str) -> Workflow:
        return self.store.get_workflow(workflow_id)

    def workflows(self) -> list[Workflow]:
        return self.store.list_workflows()

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
        self._claim(wf, result, 0.0)
        cancel = cancel or threading.Event()
        try:
            plan = self.removal_plan(workflow_id, cancel)
            kube = self.kube_for(wf)
            RemoveRun(self, wf, repo, kube, result, cancel, progress or _quiet).execute(plan, expected_plan)
        finally:
            self.store.release(wf.id, result.id)
        if result.status == "succeeded":
            self.store.remove_workflow(workflow_id)
        return result

    def record_failure(self, workflow_id: str, trigger: str, error: BaseException) -> SyncResult:
        """A sync that failed before it could start (Git or the cluster unreachable), on the record like any other."""
        wf = self.store.get_workflow(workflow_id)
        result = new_result(wf, trigger)
        result.status, result.end_time = "failed", rfc3339()
        result.message = f"Sync failed: {describe(error)}"
        self.store.start_sync(result)
        self.store.finish_sync(result, workflow_status="failed", status_message=result.message,
                               history_limit=wf.history_limit)  # fmt: skip
        return result

    def preview_sync(self, workflow_id: str) -> Plan:
        """The plan a person approves before a sync; when it cannot be computed the sync failed, and is recorded so."""
        try:
            return self.plan(workflow_id)
        except NotFoundError:
            raise
        except SlipwayError as e:
            self.record_failure(workflow_id, "manual", e)
            raise

    def status(self, workflow_id: str) -> dict[str, Any]:
        """Exactly the seed's status table."""
        wf = self.store.get_workflow(workflow_id)
        state = self.store.workflow_state(workflow_id)
        last = self.store.get_sync(state["last_sync_id"]) if state["last_sync_id"] else None
        return {
            "id": wf.id,
            "name": wf.name,
            "status": state["status"],
            "auto_sync": wf.auto_sync,
            "repository": wf.repository,
            "last_sync_result": last.to_seed() if last else None,
        }

    def live_state(self, workflow_id: str) -> dict[str, Any]:
        """Beyond the seed's status: the revision the cluster was last brought to (by a sync or a
        rollback), the revision a rollback holds auto-sync away from, and the latest status message."""
        state = self.store.workflow_state(workflow_id)
        return {k: state[k] for k in ("applied_revision", "hold_revision", "status_message")}

    def history(self, workflow_id: str, limit: int | None = None) -> list[SyncResult]:
        """Newest first; for a workflow that was removed, the history it left (kept for the audit trail)."""
        if self.workflow_exists(workflow_id):
            return self.store.history(workflow_id, limit)
        removed = self.store.history(workflow_id, limit, removed=True)
        if not removed:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return removed

    # -- task executions (the Lua ai module) ---------------------------------------------------------

    def record_execution(
        self, task_name: str, command: str, success: bool, duration: float | None, message: str, details: Any
    ) -> None:
        self.store.record_execution(task_name, command, success, duration, message, details)

    def record_ai_execution(self, fields: dict[str, Any]) -> None:
        """``ai.record_execution{...}``: checked, then kept with the other executions."""
        insight.record(self.store, fields)

    def predict_failure(self, task_name: str, command: str | None, context: list[str]) -> insight.Prediction:
        return insight.predict_from_store(self.store, task_name, command, context)

    # -- what the controller asks between syncs ---------------------------------------------------------

    def config_version(self) -> tuple[Any, ...]:
        """Changes whenever a repository or workflow is added, updated or removed (not on syncs)."""
        return self.store.config_version()

    def run_state(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's run state: status, message, hold and applied revisions, the claim."""
        return self.store.workflow_state(workflow_id)

    def set_status(self, workflow_id: str, status: str, message: str) -> None:
        self.store.set_workflow_state(workflow_id, status=status, status_message=message)

    def remote_head(self, repo: Repository) -> str:
        """The commit the repository's branch points at on the server, without fetching."""
        return self.source.remote_head(repo)

    # -- the pipeline's first stages ------------------------------------------------------------------

    def kube_for(self, wf: Workflow) -> Kube:
        return self._kube_factory(wf.destination.kubeconfig, wf.destination.context)

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
    ) -> SyncResult:
        """Sync one workflow; the recorded result. SyncInProgress if another sync holds it past ``wait``.

        ``expected_plan`` is a :meth:`Plan.fingerprint` a person approved: the sync refuses to apply
        anything else. An automatic trigger (anything but ``manual``) re-reads the workflow once it
        holds the claim, so a rollback that finished in the meantime wins: it never syncs the revision
        a rollback holds it away from (HeldBack), and ``self-heal`` restores the revision that is live.
        """
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, trigger)
        self._claim(wf, result, wait)
        cancel = cancel or threading.Event()
        try:
            if trigger != "manual":
                revision = self._automatic_revision(wf, repo, trigger, revision, cancel)
            kube = self.kube_for(wf)
            run = SyncRun(self, wf, repo, kube, result, cancel, progress or _quiet)
            run.execute(revision, expected_plan)
            if run.wants_rollback:
                # Decided here, while the claim is still ours: nothing can start in between.
                rb = self._rollback_claimed(
                    wf, repo, kube, reason=f"automatic rollback: {result.message.removeprefix('Sync failed: ')}",
                    cancel=cancel, progress=progress,
                )  # fmt: skip
                run.rolled_back(rb)
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
    ) -> SyncResult:
        if not workflow_id:
            raise NotFoundError("rollback: no workflow id given")
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, "manual", kind="rollback")
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
        run = RollbackRun(self, wf, repo, kube, result, cancel or threading.Event(), progress or _quiet)
        return run.execute(from_sync, target, rolled, reason)


def _quiet(event: str, data: dict[str, Any]) -> None:
    del event, data


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


__all__ = ["Engine", "SourceError"]
