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
from pathlib import Path
from typing import Any

from . import render as render_stage
from .errors import ConfigError, ManifestError, NotFoundError, SourceError, SyncInProgress
from .kube import Kube, connect
from .model import Repository, RetryPolicy, SyncResult, Workflow
from .plan.planner import Plan, Planner
from .render import Manifest, RenderContext
from .retry import with_retry
from .source import GitSource
from .store import Store
from .sync import Progress, RollbackRun, SyncRun, new_result

log = logging.getLogger("slipway.engine")


class Engine:
    def __init__(
        self,
        store: Store | None = None,
        source: GitSource | None = None,
        *,
        concurrency: int = 16,
        kube_factory: Callable[[str | None, str | None], Kube] = connect,
    ) -> None:
        self.store = store or Store()
        self.source = source or GitSource()
        self.concurrency = concurrency
        self._kube_factory = kube_factory

    # -- repositories ------------------------------------------------------------------------------

    def register_repository(self, config: dict[str, Any], *, check: bool = False) -> Repository:
        """Store a repository. With ``check``, the server is asked first whether the branch exists
        (with the repository's credentials), and any answer but yes raises and stores nothing."""
        repo = Repository.from_config(config)
        if check:
            self.source.remote_head(repo)
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

    def create_workflow(self, config: dict[str, Any]) -> Workflow:
        wf = Workflow.from_config(config)
        self.store.put_workflow(wf)
        return wf

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

    def remove_workflow(self, workflow_id: str) -> None:
        self.store.delete_workflow(workflow_id)

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
        self.store.get_workflow(workflow_id)
        return self.store.history(workflow_id, limit)

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
        context = RenderContext(workflow_id=wf.id, namespace=wf.destination.namespace)
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

    def plan(self, workflow_id: str) -> Plan:
        """What a sync would change now (generate_diff): fetch, render, plan; nothing is changed."""
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        revision = self.fetch(repo, policy=wf.sync_policy.retry)
        manifests = self.render(wf, repo, revision)
        kube = self.kube_for(wf)
        return Planner(kube, wf, concurrency=self.concurrency).plan(manifests, self.store.inventory(wf.id), revision)

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
        anything else.
        """
        wf = self.store.get_workflow(workflow_id)
        repo = self.store.get_repository(wf.repository)
        result = new_result(wf, trigger)
        self._claim(wf, result, wait)
        try:
            kube = self.kube_for(wf)
            run = SyncRun(self, wf, repo, kube, result, cancel or threading.Event(), progress or _quiet)
            return run.execute(revision, expected_plan)
        finally:
            self.store.release(wf.id, result.id)

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


__all__ = ["Engine", "SourceError"]
