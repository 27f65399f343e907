"""What a sync, a rollback and a cascading removal share: the run, its converge step and its record.

Every run is a small state machine over the pipeline's stages (:mod:`.sync`, :mod:`.rollback`,
:mod:`.remove`). A run records itself as ``running`` before its first stage and always reaches its
record (in a ``finally``), so it is never half-recorded: it ends succeeded, failed, or — if the
process dies — is marked interrupted by the next process that opens the store. The work itself
lives in the stage packages (source, render, plan, apply, health); a run only decides what runs
next.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import health, settings
from .apply.applier import Applier, ApplyOutcome
from .apply.hooks import HookRunner
from .durations import format_duration, parse_duration, rfc3339
from .errors import Cancelled, Refused, SlipwayError, SyncFailed, describe
from .items import Item
from .kube import Obj, ObjectRef
from .kube.fields import applied_by
from .model import Repository, Workflow, new_id
from .plan import mask, ownership
from .plan.model import Plan
from .results import SyncMetrics, SyncResult
from .store.protocol import ClaimLoss

if TYPE_CHECKING:
    from .engine import Engine
    from .kube import Kube
    from .store import StateStore as Store

log = logging.getLogger("slipway.sync")

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class Failure:
    message: str | None = None
    refused: bool = False  # refused before anything was applied (errors.Refused)


@dataclass
class Run:
    """What every run shares: the engine, the workflow, its cluster and the record being written."""

    engine: Engine
    wf: Workflow
    repo: Repository
    kube: Kube
    result: SyncResult
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default=lambda event, data: None)
    started: float = field(default_factory=time.monotonic)
    outcome: ApplyOutcome = field(default_factory=ApplyOutcome)
    plan: Plan | None = None
    _credentials: list[str] | None = None
    wait_final_health: bool = True  # False (sync --no-wait): recorded once applied, health as it is then

    @property
    def store(self) -> Store:
        return self.engine.store

    def scrub(self, text: str) -> str:
        """``text`` without the values of the Secrets this run declares, nor the repository's credentials."""
        objects = [it.manifest for it in self.plan.items] if self.plan is not None else []
        text = mask.scrub(text, objects)
        if self._credentials is None:
            # Every registered repository's, not only this one's: a hook's environment may hold any of them.
            self._credentials = sorted(set(self.engine.credential_values(self.repo)), key=len, reverse=True)
        for value in self._credentials:
            text = text.replace(value, mask.MASK)
        return text

    @contextlib.contextmanager
    def failures(self, what: str) -> Iterator[Failure]:
        """Run the block; what stopped it, as one line, lands in the Failure (never an exception out of a run).

        A cancel says so, slipway's own errors say what they say, and anything else is a bug: it is
        logged with its traceback and reported as an internal error.
        """
        failed = Failure()
        try:
            yield failed
        except Cancelled as e:
            failed.message = f"cancelled: {e}"
            if isinstance(self.cancel, ClaimLoss) and self.cancel.reason:
                failed.message = f"lost its claim on the workflow ({self.cancel.reason}): it changed nothing more"
        except Refused as e:
            failed.message, failed.refused = describe(e), True
        except SlipwayError as e:
            failed.message = describe(e)
        except Exception as e:
            log.exception("%s %s: unexpected error", what, self.result.id)
            failed.message = f"internal error: {describe(e)}"

    def note_commit(self, revision: str | None) -> None:
        """Keep the commit's subject and author with the record (scrubbed as any text of the run)."""
        if not revision or self.repo.type != "git":
            return
        try:
            info = self.engine.source.commit_info(self.repo, revision)
        except SlipwayError as e:
            log.debug("%s %s: commit of %s not read: %s", self.result.kind, self.result.id, revision, describe(e))
            return
        if info:
            self.result.commit_message = self.scrub(info["subject"])
            self.result.commit_author = self.scrub(info["author"])

    rendered: tuple[str, list[Any]] | None = None  # (revision, manifests) this run rendered, if any

    def record_axes(self, inventory: dict[ObjectRef, str] | None) -> None:
        """Compute the workflow's sync status and health now (:mod:`slipway.axes`) and store them before
        the run's record says it finished: whoever reads the finished record reads them up to date."""
        if self.cancel.is_set():
            return  # a cancelled run ends at once; the next look computes them
        try:
            self.engine.assess(self.wf.id, self.cancel, inventory=inventory, rendered=self.rendered)
        except Exception as e:  # the run's outcome stands whatever happens here
            log.warning("%s %s: sync status and health not computed: %s", self.result.kind, self.result.id, describe(e))

    def stage(self, name: str) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"cancelled before {name}")
        self.progress("stage", {"name": name})

    # -- shared stages -------------------------------------------------------------------------------

    def converge(self, plan: Plan, hooks: HookRunner | None = None) -> tuple[bool, str]:
        """The stages a sync and a rollback share: backup, apply wave by wave, prune, then the health wait.

        Each sync wave is applied (with its Sync-phase hooks) and, when health checks are on, waited
        for until healthy before the next wave starts: a wave that does not become healthy stops the
        sync there. Pruning walks the waves in reverse.
        """
        # How much there is to do, so a watcher can show "applied 3 of 10".
        writes = sum(1 for it in plan.items if it.action in ("create", "update"))
        self.progress(
            "planned", {"apply": writes, "delete": len(plan.deletions), "total": writes + len(plan.deletions)}
        )
        self.stage("backup")
        self.backup(plan)
        self.stage("apply")
        sync_hooks = [h for h in plan.hooks if "Sync" in h.spec.phases] if hooks is not None else []
        levels = sorted({it.wave for it in plan.items if it.action != "blocked"} | {h.spec.wave for h in sync_hooks})
        applier = self._applier()
        for i, wave in enumerate(levels):
            in_wave = [it for it in plan.items if it.wave == wave]
            if len(levels) > 1:
                self.progress("wave", {"wave": wave, "objects": len(in_wave), "of": len(levels), "index": i + 1})
            done = {id(it) for it in self.outcome.applied}  # namespaces created early for hooks
            applier.apply([it for it in in_wave if id(it) not in done], self.outcome)
            self._raise_failed()
            if hooks is not None:
                hooks.run("Sync", plan.hooks, wave)
            if i < len(levels) - 1 and self.wf.sync_policy.health_check.enabled:
                ok, why = self.wait_health(in_wave)
                if not ok:
                    later = [w for w in levels if w > wave]
                    return (
                        False,
                        f"sync wave {wave} did not become healthy, so waves {_span(later)} were not applied: {why}",
                    )
        if plan.deletions:
            applier.prune(plan.deletions, self.outcome)
            self._raise_failed()
        self.stage("health")
        if not self.wait_final_health:
            return True, ""  # the sync's record says so; sync status and health are computed as it ends
        return self.wait_health(plan.items)

    def applied_all(self, plan: Plan | None) -> bool:
        """Every object the plan creates or changes was applied and every deletion done: what is live is
        the plan's revision, whatever its health says."""
        if plan is None:
            return False
        applied = {id(it) for it in self.outcome.applied}
        wanted = [it for it in plan.items if it.action in ("create", "update")]
        return all(id(it) in applied for it in wanted) and len(self.outcome.deleted) >= len(plan.deletions)

    def backup(self, plan: Plan) -> None:
        """Keep what slipway had applied to each object before we touch it, and what we are about to declare.

        A backup is slipway's own part of the live object (its managed fields), not the whole of
        it: restoring it never pins what the server generated nor takes fields others own.
        """
        backups = [
            (it.ref, it.api_version, it.action, backup_of(it.live))
            for it in [*plan.items, *plan.deletions]
            if it.action in ("update", "delete") and it.live is not None
        ]
        desired = [  # not what Git does not declare (the namespace create_namespace makes): a rollback restores Git
            (it.ref, it.api_version, it.action, it.manifest)
            for it in plan.items
            if it.manifest is not None and it.action != "blocked" and it.tracked
        ]
        self.store.put_sync_objects(self.result.id, "backup", backups)
        self.store.put_sync_objects(self.result.id, "desired", desired)

    def _applier(self) -> Applier:
        return Applier(
            self.kube,
            self.wf.sync_policy.retry,
            concurrency=self.engine.concurrency,
            cancel=self.cancel,
            progress=self.progress,
            on_applied=lambda items: self.store.add_inventory(
                self.wf.id, {it.ref: it.api_version for it in items if it.tracked}
            ),
        )

    def prune_only(self, deletions: list[Item]) -> None:
        """Delete ``deletions`` (walking waves and the order table backwards); nothing is applied."""
        self._applier().prune(deletions, self.outcome)
        self._raise_failed()

    def _raise_failed(self) -> None:
        if not self.outcome.ok:
            first = self.outcome.failed[0][1]
            more = len(self.outcome.failed) - 1
            raise SyncFailed(f"apply failed: {first}" + (f" (and {more} more)" if more else ""))

    def wait_health(self, items: list[Item]) -> tuple[bool, str]:
        policy = self.wf.sync_policy.health_check
        if not policy.enabled:
            return True, ""
        targets = [health.Target(it.ref, it.info) for it in items if it.info is not None and it.action != "blocked"]

        def report(states: dict[ObjectRef, health.Health]) -> None:
            healthy = sum(1 for h in states.values() if h.status in health.SETTLED)
            # What a person waits for, by name: the first few not healthy yet, with their state.
            waiting = [
                {"resource": t.ref.resource, "namespace": t.ref.namespace or None,
                 "status": states[t.ref].status if t.ref in states else None,  # None: not looked at yet
                 "message": states[t.ref].message if t.ref in states else ""}
                for t in targets if t.ref not in states or states[t.ref].status not in health.SETTLED
            ][:5]  # fmt: skip
            self.progress("health", {"total": len(targets), "healthy": healthy, "waiting": waiting})

        report({})

        # What the apply returned, or the live object an unchanged item was compared with.
        known = {it.ref: it.returned if it.action in ("create", "update") else it.live for it in items}
        ok, states = health.wait(
            self.kube,
            targets,
            parse_duration(policy.timeout),
            selector=f"{settings.LABEL_WORKFLOW}={self.wf.id}",
            cancel=self.cancel,
            progress=report,
            known={ref: obj for ref, obj in known.items() if obj is not None},
        )
        # Each wave's verdicts, then the final ones: the latest word on every object is kept.
        latest = {
            (ref.resource, ref.namespace or None): {"resource": ref.resource, "namespace": ref.namespace or None,
                                                    "status": h.status, "message": h.message}
            for ref, h in sorted(states.items())
        }  # fmt: skip
        earlier = [r for r in self.result.health if (r["resource"], r["namespace"]) not in latest]
        self.result.health = earlier + list(latest.values())
        if ok:
            return True, ""
        bad = [(ref, h) for ref, h in sorted(states.items()) if h.status not in health.SETTLED]
        worst = next(((r, h) for r, h in bad if h.status == health.DEGRADED), bad[0] if bad else None)
        if worst is None:
            return False, f"health check timed out after {policy.timeout}"
        ref, h = worst
        verdict = "is degraded" if h.status == health.DEGRADED else f"not healthy after {policy.timeout}"
        extra = f" (and {len(bad) - 1} more not healthy)" if len(bad) > 1 else ""
        return False, f"health check failed: {ref.resource} {verdict}: {h.message}{extra}"

    def metrics(self, plan: Plan | None) -> SyncMetrics:
        items = plan.items if plan else []
        deletions = plan.deletions if plan else []
        return SyncMetrics(
            duration=format_duration(time.monotonic() - self.started),
            resources_processed=len(items) + len(deletions),
            resources_applied=len(self.outcome.applied),
            resources_deleted=len(self.outcome.deleted),
            resources_skipped=sum(1 for it in items if it.action == "unchanged"),
            conflicts_resolved=sum(1 for it in self.outcome.applied if it.drifted),
        )

    def inventory_after(self, plan: Plan | None) -> dict[ObjectRef, str]:
        """What the workflow owns now: the store's inventory minus what was deleted, plus what was applied,
        plus what it declares that is live, unchanged and carries its marks — an object a sync killed
        mid-apply wrote before it could record it is found unchanged by the next one, and owned again."""
        inv = self.store.inventory(self.wf.id)
        for it in self.outcome.deleted:
            inv.pop(it.ref, None)
        for it in self.outcome.applied:
            if it.tracked:
                inv[it.ref] = it.api_version
        instance = self.store.instance_id
        for it in plan.items if plan is not None else ():
            unchanged = it.tracked and it.action == "unchanged" and it.live is not None and it.ref not in inv
            if unchanged and ownership.owner(it.live, self.wf.id, instance) == "ours":  # type: ignore[arg-type]
                inv[it.ref] = it.api_version
        return inv


def backup_of(live: Obj) -> Obj:
    """What slipway applied to ``live`` (its managed fields); the whole object only if slipway applied nothing."""
    return applied_by(live, settings.FIELD_MANAGER) or live


def short(rev: str | None) -> str:
    return rev[:12] if rev else ""


def refused_or_failed(plan: Plan) -> SyncFailed:
    """A plan with blocking conflicts stops the run before it applies anything: a conflict with what
    is live is a refusal (its own outcome); an object Git declares that is invalid is a failed sync."""
    invalid = any(c.type == "validation" for c in plan.blocking)
    return SyncFailed(refusal(plan)) if invalid else Refused(refusal(plan))


def refusal(plan: Plan) -> str:
    blocking = plan.blocking
    first = blocking[0]
    more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
    return (
        f"refused: {len(blocking)} conflict(s) must be resolved first; nothing was applied: "
        f"{first.resource} ({first.type}): {first.description}{more}"
    )


def new_result(wf: Workflow, trigger: str, kind: str = "sync") -> SyncResult:
    return SyncResult(
        id=new_id("sync" if kind == "sync" else "rollback"),
        workflow_id=wf.id,
        status="running",
        start_time=rfc3339(),
        commit_hash=None,
        message="",
        kind=kind,
        trigger=trigger,
    )


def _span(waves: list[int]) -> str:
    return str(waves[0]) if len(waves) == 1 else f"{waves[0]} to {waves[-1]}"
