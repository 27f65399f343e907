"""The engine's catalog: repositories and workflows, their run state, history and task executions.

What a front reads and declares between pipeline runs, straight from the state store. The
:class:`~slipway.engine.Engine` is this plus the pipeline; fronts see one object.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .durations import rfc3339
from .errors import ConfigError, NotFoundError, SlipwayError, describe
from .model import Repository, Workflow
from .results import SyncResult
from .tokens import Tokens

if TYPE_CHECKING:
    from . import insight
    from .plan.model import Plan
    from .source import GitSource
    from .store import StateStore

log = logging.getLogger("slipway.engine")


class Catalog(Tokens):
    store: StateStore
    source: GitSource

    def plan(self, workflow_id: str, *, local_checks: bool = False) -> Plan:  # the pipeline's, in Engine
        raise NotImplementedError

    # -- repositories ------------------------------------------------------------------------------

    def register_repository(self, config: dict[str, Any], *, check: bool = False) -> Repository:
        """Store a repository. With ``check``, the server is asked first whether the branch exists
        (with the repository's credentials), and any answer but yes raises and stores nothing."""
        repo = Repository.from_config(config)
        if check and repo.type == "git":
            self.source.remote_head(repo)
        users = [wf.id for wf in self.store.list_workflows() if wf.repository == repo.id]
        if users and any((wf.chart is None) == (repo.type == "helm") for wf in self.store.list_workflows()
                         if wf.id in users):  # fmt: skip
            raise ConfigError(f"type: repository {repo.id} is read by workflow(s) {', '.join(users)}; its type stays")
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
        try:
            repo = self.store.get_repository(wf.repository)  # one read, not every repository's
        except NotFoundError:
            return  # the store says so, naming it
        if repo.type == "helm" and wf.chart is None:
            raise ConfigError(
                f"chart: required for a workflow of repository {wf.repository}, a Helm chart repository "
                "(name the chart, and its chart_version range)"
            )
        if repo.type == "git" and wf.chart is not None:
            raise ConfigError(
                f"chart: repository {wf.repository} is a Git repository; a chart there is a path (target_path), "
                "chart is for a repository of type helm"
            )
        from .render.options import values_ref

        for i, ref in enumerate(wf.helm.values_files if wf.helm else []):
            if ref.startswith("$"):
                rid, _ = values_ref(ref, f"helm.values_files[{i + 1}]")
                try:
                    kind = self.store.get_repository(rid).type
                except NotFoundError:
                    raise ConfigError(f"helm.values_files[{i + 1}]: repository {rid} is not registered") from None
                if kind != "git":
                    raise ConfigError(f"helm.values_files[{i + 1}]: repository {rid} is not a Git repository")

    def credential_values(self, *extra: Repository) -> list[str]:
        """The secret values of every registered repository's credentials (and of ``extra``): what to scrub."""
        out = []
        for repo in [*self.store.list_repositories(), *extra]:
            creds = repo.credentials
            for value in (creds.token, creds.password, creds.ssh_key) if creds is not None else ():
                if value and len(value) >= 4:
                    out.append(value)
        return out

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

    def record_failure(
        self, workflow_id: str, trigger: str, error: BaseException, result: SyncResult | None = None
    ) -> SyncResult:
        """A sync that failed before it could start (Git or the cluster unreachable), on the record like any other."""
        from .run import new_result

        wf = self.store.get_workflow(workflow_id)
        result = result or new_result(wf, trigger)
        result.status, result.end_time = "failed", rfc3339()
        result.message = f"Sync failed: {describe(error)}"
        self.store.start_sync(result)
        self.store.finish_sync(result, workflow_status="failed", status_message=result.message,
                               history_limit=wf.history_limit)  # fmt: skip
        return result

    def preview_sync(self, workflow_id: str) -> Plan:
        """The plan a person approves before a sync; when it cannot be computed the sync failed, and is recorded so."""
        try:
            return self.plan(workflow_id, local_checks=True)  # as the sync will check it
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

    def workflow_overview(self, *, remote: bool = True, live: bool = False) -> list[dict[str, Any]]:
        """Every workflow's status table with its two axes and last operation (:func:`slipway.axes.report`:
        as last computed, or computed now with ``live``), its path and namespace, the revision live and
        the branch's head (``remote``: one check per repository, at once), and ``out_of_date``: the
        branch moved past what is live *and* that changes what the workflow renders. A workflow whose
        axes were last computed at another head is computed again (a commit elsewhere in the
        repository then leaves it up to date)."""
        from concurrent.futures import ThreadPoolExecutor

        from . import axes

        workflows = self.store.list_workflows()
        heads: dict[str, tuple[str | None, str | None]] = {}
        if remote:
            repos = {r.id: r for r in self.store.list_repositories() if r.type == "git"}
            wanted = [repos[i] for i in sorted({wf.repository for wf in workflows}) if i in repos]

            def head(repo: Repository) -> tuple[str, tuple[str | None, str | None]]:
                try:
                    return repo.id, (self.source.remote_head(repo), None)
                except SlipwayError as e:
                    return repo.id, (None, describe(e))

            if wanted:
                with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
                    heads = dict(pool.map(head, wanted))

        def one(wf: Workflow) -> dict[str, Any] | None:
            state = self.store.workflow_state(wf.id)
            branch_head, error = heads.get(wf.repository, (None, None))
            live_rev = state["applied_revision"]
            moved = bool(live_rev and branch_head and branch_head != live_rev and branch_head != state["hold_revision"])
            kept = (state.get("assessment") or {}).get("sync_status") or {}
            # Moved past what is live, and not yet compared at this head: compare now, for this path.
            fresh = live or (moved and kept.get("revision") != branch_head)
            row = axes.report(self, wf.id, live=fresh)  # type: ignore[arg-type]
            row.pop("objects", None)
            sync = row["sync_status"]
            if moved and sync.get("revision") == branch_head:
                moved = sync["status"] != "Synced"  # the head's render is what is live: nothing to do
            row.update(
                path=wf.target_path, namespace=wf.destination.namespace, live_revision=live_rev,
                branch_head=branch_head, head_error=error, status_message=state["status_message"],
                out_of_date=moved,
            )  # fmt: skip
            return row

        def safe(wf: Workflow) -> dict[str, Any] | None:
            try:
                return one(wf)
            except NotFoundError:
                return None  # removed while we listed

        with ThreadPoolExecutor(max_workers=4) as pool:
            rows = list(pool.map(safe, workflows))
        return [r for r in rows if r is not None]

    def workflow_rows(self, query: list[tuple[str, str]], *, live: bool = False) -> list[dict[str, Any]]:
        """The API's list: each status table plus ``path``, ``namespace``, ``cluster`` and ``labels``
        (with ``live``, or a sync or health filter, the axes as last computed), filtered as the query
        asks (:mod:`slipway.filters`, the overview's filter too); ConfigError for a bad word."""
        from . import axes, filters

        wanted = filters.parse(query)
        with_axes = live or bool(wanted.sync or wanted.health)
        out = []
        for wf in self.store.list_workflows():
            try:
                row = axes.report(self, wf.id, live=False) if with_axes else self.status(wf.id)  # type: ignore[arg-type]
                if live:
                    row["live_state"] = self.live_state(wf.id)
            except NotFoundError:
                continue  # removed while we listed
            row.update(path=wf.target_path, namespace=wf.destination.namespace,
                       cluster=filters.cluster_of(asdict(wf.destination)), labels=dict(wf.labels))  # fmt: skip
            if filters.matches(row, wanted):
                out.append(row)
        return out

    def workflow_filters(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        """What a filter form shows: the values the query asks for (``error`` when it asks for a word
        that is not a sync status or health) and the namespaces, clusters, repositories and labels
        there are to choose from."""
        from . import filters

        error = ""
        try:
            wanted = filters.parse(query)
        except ConfigError as e:
            wanted, error = filters.Filter(), str(e)
        workflows = self.store.list_workflows()
        return {
            "sync": wanted.sync[0] if wanted.sync else "",
            "health": wanted.health[0] if wanted.health else "",
            "namespace": wanted.namespace[0] if wanted.namespace else "",
            "cluster": wanted.cluster[0] if wanted.cluster else "",
            "repository": wanted.repository[0] if wanted.repository else "",
            "label": ",".join(k if v is None else f"{k}={v}" for k, v in wanted.labels),
            "q": next((v for k, v in query if k == "q"), ""),
            "error": error,
            "namespaces": sorted({wf.destination.namespace for wf in workflows}),
            "clusters": sorted({filters.cluster_of(asdict(wf.destination)) for wf in workflows}),
            "repositories": sorted({wf.repository for wf in workflows}),
            "labels": sorted({f"{k}={v}" for wf in workflows for k, v in wf.labels.items()}),
        }

    def live_state(self, workflow_id: str) -> dict[str, Any]:
        """Beyond the seed's status: the revision the cluster was last brought to (by a sync or a
        rollback), the revision a rollback holds auto-sync away from, and the latest status message."""
        state = self.store.workflow_state(workflow_id)
        return {k: state[k] for k in ("applied_revision", "hold_revision", "status_message")}

    def sync_record(self, sync_id: str) -> SyncResult:
        """One sync or rollback as recorded (running ones too); NotFoundError if there is none."""
        return self.store.get_sync(sync_id)

    def owned_count(self, workflow_id: str) -> int:
        """How many objects the workflow owns in the cluster (its inventory), without asking the cluster."""
        return len(self.store.inventory(workflow_id))

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
        from . import insight

        insight.record(self.store, fields)

    def predict_failure(self, task_name: str, command: str | None, context: list[str]) -> insight.Prediction:
        from . import insight

        return insight.predict_from_store(self.store, task_name, command, context)

    # -- what the controller asks between syncs ---------------------------------------------------------

    def config_version(self) -> tuple[Any, ...]:
        """Changes whenever a repository or workflow is added, updated or removed (not on syncs)."""
        return self.store.config_version()

    def run_state(self, workflow_id: str) -> dict[str, Any]:
        """The workflow's run state: status, message, hold and applied revisions, the claim."""
        return self.store.workflow_state(workflow_id)

    def unlock_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Release the workflow's claim when its holder cannot be seen alive (a process of another
        machine that left no liveness), recording its sync interrupted; refused while it is alive."""
        released = self.store.unlock(workflow_id)
        return {
            "workflow": workflow_id,
            "unlocked": released is not None,
            "sync_id": released["syncId"] if released else None,
            "holder": released["holder"] if released else None,
        }

    def set_status(self, workflow_id: str, status: str, message: str) -> None:
        self.store.set_workflow_state(workflow_id, status=status, status_message=message)

    def remote_head(self, repo: Repository) -> str:
        """The commit the repository's branch points at on the server, without fetching."""
        return self.source.remote_head(repo)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
