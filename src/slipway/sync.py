"""A sync and a rollback as small state machines over the pipeline's stages.

    sync:     fetch -> render -> plan -> pre-hooks -> backup -> apply -> prune -> health -> post-hooks -> record
    rollback:                    plan -> backup -> apply -> prune -> health -> record

Each stage is one method; the run records itself as ``running`` before its first stage and always
reaches ``record`` (in a ``finally``), so a sync is never half-recorded: it ends succeeded, failed,
or — if the process dies — is marked interrupted by the next process that opens the store. The
work itself lives in the stage packages (source, render, plan, apply, health); this module only
decides what runs next.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import health, hooks, settings
from .apply.applier import Applier, ApplyOutcome, restore_object
from .durations import format_duration, parse_duration
from .errors import Cancelled, SlipwayError, describe
from .kube import Kube, ObjectRef
from .model import Repository, SyncMetrics, SyncResult, Workflow, new_id
from .plan import mask
from .plan.planner import HASH_ANNOTATION, Item, Plan, Planner, now_rfc3339
from .render import Manifest

if TYPE_CHECKING:
    from .engine import Engine
    from .store import Store

log = logging.getLogger("slipway.sync")

Progress = Callable[[str, dict[str, Any]], None]


class SyncFailed(SlipwayError):
    """A stage failed; the message says which and why."""


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

    @property
    def store(self) -> Store:
        return self.engine.store

    def stage(self, name: str) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"cancelled before {name}")
        self.progress("stage", {"name": name})

    # -- shared stages -------------------------------------------------------------------------------

    def converge(self, plan: Plan) -> tuple[bool, str]:
        """The stages a sync and a rollback share: backup, apply and prune, then the health wait."""
        self.stage("backup")
        self.backup(plan)
        self.stage("apply")
        self.apply(plan, plan.deletions)
        self.stage("health")
        return self.wait_health(plan)

    def backup(self, plan: Plan) -> None:
        """Keep what the cluster had before we touch it, and what we are about to declare."""
        backups = [
            (it.ref, it.api_version, it.action, it.live)
            for it in [*plan.items, *plan.deletions]
            if it.action in ("update", "delete") and it.live is not None
        ]
        desired = [
            (it.ref, it.api_version, it.action, it.manifest)
            for it in plan.items
            if it.manifest is not None and it.action != "blocked"
        ]
        self.store.put_sync_objects(self.result.id, "backup", backups)
        self.store.put_sync_objects(self.result.id, "desired", desired)

    def apply(self, plan: Plan, deletions: list[Item]) -> None:
        applier = Applier(
            self.kube,
            self.wf.sync_policy.retry,
            concurrency=self.engine.concurrency,
            cancel=self.cancel,
            progress=self.progress,
            on_applied=lambda items: self.store.add_inventory(self.wf.id, {it.ref: it.api_version for it in items}),
        )
        self.outcome = applier.apply(plan.items)
        if self.outcome.ok and deletions:
            applier.prune(deletions, self.outcome)
        if not self.outcome.ok:
            first = self.outcome.failed[0][1]
            more = len(self.outcome.failed) - 1
            raise SyncFailed(f"apply failed: {first}" + (f" (and {more} more)" if more else ""))

    def wait_health(self, plan: Plan) -> tuple[bool, str]:
        policy = self.wf.sync_policy.health_check
        if not policy.enabled:
            return True, ""
        targets = [
            health.Target(it.ref, it.info) for it in plan.items if it.info is not None and it.action != "blocked"
        ]
        self.progress("health", {"total": len(targets), "healthy": 0})

        def report(states: dict[ObjectRef, health.Health]) -> None:
            healthy = sum(1 for h in states.values() if h.status == health.HEALTHY)
            self.progress("health", {"total": len(targets), "healthy": healthy})

        # What the apply returned, or the live object an unchanged item was compared with.
        known = {it.ref: it.dry if it.action in ("create", "update") else it.live for it in plan.items}
        ok, states = health.wait(
            self.kube,
            targets,
            parse_duration(policy.timeout),
            selector=f"{settings.LABEL_WORKFLOW}={self.wf.id}",
            cancel=self.cancel,
            progress=report,
            known={ref: obj for ref, obj in known.items() if obj is not None},
        )
        self.result.health = [
            {"resource": ref.resource, "namespace": ref.namespace or None, "status": h.status, "message": h.message}
            for ref, h in sorted(states.items())
        ]
        if ok:
            return True, ""
        bad = [(ref, h) for ref, h in sorted(states.items()) if h.status != health.HEALTHY]
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
        applied = len(self.outcome.applied) + len(self.outcome.deleted)
        return SyncMetrics(
            duration=format_duration(time.monotonic() - self.started),
            resources_processed=len(items) + len(deletions),
            resources_applied=applied,
            resources_skipped=sum(1 for it in items if it.action == "unchanged"),
            conflicts_resolved=sum(1 for it in self.outcome.applied if it.drifted),
        )

    def inventory_after(self, plan: Plan | None) -> dict[ObjectRef, str]:
        """What the workflow owns now: the store's inventory minus what was deleted, plus what was applied."""
        inv = self.store.inventory(self.wf.id)
        for it in self.outcome.deleted:
            inv.pop(it.ref, None)
        for it in self.outcome.applied:
            inv[it.ref] = it.api_version
        return inv


class SyncRun(Run):
    def execute(self, revision: str | None = None, expected_plan: str | None = None) -> SyncResult:
        """Run every stage; returns the finished, recorded result (it never raises for a failed sync)."""
        store, wf, result = self.store, self.wf, self.result
        store.start_sync(result)
        log.info("sync %s of workflow %s started (%s)", result.id, wf.id, result.trigger)
        failure: str | None = None
        health_failed = False
        plan: Plan | None = None
        try:
            self.stage("fetch")
            rev = self.engine.fetch(self.repo, revision, cancel=self.cancel, policy=wf.sync_policy.retry)
            result.commit_hash = rev
            store.update_sync(result)
            self.stage("render")
            manifests = self.engine.render(wf, self.repo, rev)
            self.stage("plan")
            plan = self.plan = Planner(self.kube, wf, concurrency=self.engine.concurrency, cancel=self.cancel).plan(
                manifests, store.inventory(wf.id), rev
            )
            result.changes = [c.to_record() for c in plan.changes]
            if wf.diff_preview:
                self.preview(plan)
            if plan.blocking:
                raise SyncFailed(_refusal(plan))
            if expected_plan is not None and plan.fingerprint() != expected_plan:
                raise SyncFailed(
                    "refused: the plan changed since it was shown (Git or the cluster moved); review it again"
                )
            if plan.empty_render_refused:
                raise SyncFailed(f"refused: {plan.warnings[-1]}")
            self.stage("pre-hooks")
            self.run_hooks("pre", wf.sync_policy.pre_sync_hooks, rev)
            ok, why = self.converge(plan)
            if not ok:
                mode = wf.sync_policy.health_check.failure_mode
                if mode != "ignore":
                    health_failed = True
                    raise SyncFailed(why)
                result.message = f"{why} (ignored: failure_mode is ignore)"
            self.stage("post-hooks")
            self.run_hooks("post", wf.sync_policy.post_sync_hooks, rev)
        except Cancelled as e:
            failure = f"cancelled: {e}"
        except SlipwayError as e:
            failure = describe(e)
        except Exception as e:
            log.exception("sync %s: unexpected error", result.id)
            failure = f"internal error: {describe(e)}"
        return self.finish(plan, failure, health_failed)

    def preview(self, plan: Plan) -> None:
        """diff_preview: say what is about to change before anything does (in the log and to fronts)."""
        s = plan.summary()
        log.info(
            "sync %s of %s will change %d object(s): +%d ~%d -%d, %d conflict(s)",
            self.result.id, self.wf.id, s["total_changes"], s["created_resources"], s["updated_resources"],
            s["deleted_resources"], s["conflict_count"],
        )  # fmt: skip
        for change in plan.changes:
            log.info("  %s [%s]", change.diff.splitlines()[0].rstrip(":"), change.impact)
        self.progress("preview", {"summary": s})

    def run_hooks(self, phase: str, commands: list[str], revision: str) -> None:
        if not commands:
            return
        env = {
            **os.environ,
            "SLIPWAY_WORKFLOW_ID": self.wf.id,
            "SLIPWAY_SYNC_ID": self.result.id,
            "SLIPWAY_REVISION": revision,
            "SLIPWAY_NAMESPACE": self.wf.destination.namespace,
            "SLIPWAY_HOOK": phase,
        }
        timeout = parse_duration(self.wf.sync_policy.hook_timeout)
        with hooks.kubeconfig_for(self.kube.kubeconfig, self.wf.destination.context) as kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
            for command in commands:
                if self.cancel.is_set():
                    raise Cancelled(f"cancelled before {phase}-sync hook {command!r}")
                self.progress("hook", {"phase": phase, "command": command})
                hr = hooks.run_hook(phase, command, env, timeout, self.cancel)
                self.result.hooks.append(hr.to_dict())
                if self.cancel.is_set() and not hr.ok:
                    raise Cancelled(f"{phase}-sync hook {command!r} stopped")
                if not hr.ok:
                    why = "timed out" if hr.exit_code is None else f"exited with {hr.exit_code}"
                    last = hr.output.strip().splitlines()[-1:] or [""]
                    raise SyncFailed(f"{phase}-sync hook {command!r} {why}: {last[0]}".rstrip(": "))

    def finish(self, plan: Plan | None, failure: str | None, health_failed: bool) -> SyncResult:
        store, wf, result = self.store, self.wf, self.result
        result.metrics = self.metrics(plan)
        result.end_time = now_rfc3339()
        changed = bool(self.outcome.applied or self.outcome.deleted)
        if failure is None:
            result.status = "succeeded"
            summary = f"applied {len(self.outcome.applied)}, deleted {len(self.outcome.deleted)}, unchanged {result.metrics.resources_skipped}"
            result.message = (
                f"Sync completed successfully ({summary})"
                if not result.message
                else f"Sync completed ({summary}); {result.message}"
            )
            inventory = self.inventory_after(plan)
            for it in plan.orphans if plan else []:
                inventory[it.ref] = it.api_version
            store.finish_sync(
                result,
                workflow_status="synced",
                status_message=result.message,
                inventory=inventory,
                applied_revision=result.commit_hash,
                hold_revision=None,
            )
            log.info(
                "sync %s of %s at %s: succeeded (%s) in %s",
                result.id,
                wf.id,
                _short(result.commit_hash),
                summary,
                result.metrics.duration,
            )
            return result

        result.status = "failed"
        result.message = f"Sync failed: {failure}"
        wants_rollback = changed and (
            wf.rollback_on_failure or (health_failed and wf.sync_policy.health_check.failure_mode == "rollback")
        )
        store.finish_sync(
            result, workflow_status="failed", status_message=result.message, inventory=self.inventory_after(plan)
        )
        log.warning("sync %s of %s at %s: failed: %s", result.id, wf.id, _short(result.commit_hash), failure)
        if wants_rollback and not self.cancel.is_set():
            rb = self.engine._rollback_claimed(
                self.wf, self.repo, self.kube, reason=f"automatic rollback: {failure}", progress=self.progress
            )
            if rb.status == "succeeded":
                result.message += f"; rolled back to {_short(rb.commit_hash) or 'the state before it'}"
            else:
                result.message += f"; rollback failed: {rb.message}"
            result.rolled_back = rb.status == "succeeded"
            store.finish_sync(
                result,
                workflow_status="failed" if rb.status == "succeeded" else "degraded",
                status_message=result.message,
            )
        return result


class RollbackRun(Run):
    def execute(
        self, from_sync: SyncResult, target: SyncResult | None, rolled: list[SyncResult], reason: str
    ) -> SyncResult:
        """Roll back ``rolled`` (newest first, from_sync among them) to ``target`` (None: before any sync)."""
        store, wf, result = self.store, self.wf, self.result
        result.kind = "rollback"
        result.reason = reason
        result.commit_hash = target.commit_hash if target else None
        result.from_revision = from_sync.commit_hash
        result.target_sync_id = target.id if target else None
        store.start_sync(result)
        log.info(
            "rollback %s of %s from %s to %s: %s",
            result.id,
            wf.id,
            _short(from_sync.commit_hash),
            _short(result.commit_hash),
            reason,
        )
        failure: str | None = None
        plan: Plan | None = None
        try:
            self.stage("plan")
            manifests, created = self.restore_set(target, rolled)
            planner_wf = replace(wf, sync_policy=replace(wf.sync_policy, auto_prune=True, allow_empty=True))
            plan = self.plan = Planner(
                self.kube, planner_wf, concurrency=self.engine.concurrency, cancel=self.cancel
            ).plan(manifests, store.inventory(wf.id), result.commit_hash)
            deletions = [d for d in plan.deletions if wf.sync_policy.auto_prune or d.ref in created]
            plan.orphans += [d for d in plan.deletions if d not in deletions]
            plan.deletions = deletions
            kept = {(d.ref.resource, d.namespace) for d in deletions}
            result.changes = [
                c.to_record() for c in plan.changes if c.type != "delete" or (c.resource, c.namespace) in kept
            ]
            if plan.blocking:
                raise SyncFailed(_refusal(plan))
            ok, why = self.converge(plan)
            if not ok:
                raise SyncFailed(why)
        except Cancelled as e:
            failure = f"cancelled: {e}"
        except SlipwayError as e:
            failure = describe(e)
        except Exception as e:
            log.exception("rollback %s: unexpected error", result.id)
            failure = f"internal error: {describe(e)}"
        result.metrics = self.metrics(plan)
        result.end_time = now_rfc3339()
        to = _short(result.commit_hash) or "the state before the first sync"
        if failure is None:
            result.status = "succeeded"
            result.message = f"Rolled back from {_short(from_sync.commit_hash)} to {to}: {reason}"
            inventory = self.inventory_after(plan)
            for it in plan.orphans if plan else []:
                inventory[it.ref] = it.api_version
            status = "synced" if from_sync.status == "succeeded" else "failed"
            store.finish_sync(
                result,
                workflow_status=status,
                status_message=result.message,
                inventory=inventory,
                applied_revision=result.commit_hash,
                hold_revision=from_sync.commit_hash,
                mark_rolled_back=[s.id for s in rolled],
            )
        else:
            result.status = "failed"
            result.message = f"Rollback to {to} failed: {failure}"
            store.finish_sync(
                result, workflow_status="degraded", status_message=result.message, inventory=self.inventory_after(plan)
            )
        log.info("rollback %s of %s: %s", result.id, wf.id, result.message)
        return result

    def restore_set(self, target: SyncResult | None, rolled: list[SyncResult]) -> tuple[list[Manifest], set[ObjectRef]]:
        """Target's desired manifests, plus backups of what later syncs deleted or replaced that it lacks."""
        out: dict[ObjectRef, Manifest] = {}
        if target is not None:
            for ref, _, _, obj in self.store.sync_objects(target.id, "desired"):
                if obj is not None:
                    out[ref] = Manifest(obj, f"sync {target.id}")
        created: set[ObjectRef] = set()
        for sync in reversed(rolled):  # oldest first: the earliest backup of an object is its state before
            for change in sync.changes:
                if change.get("type") == "create":
                    created.add(_ref_of(change))
            for ref, _, action, obj in self.store.sync_objects(sync.id, "backup"):
                if ref in out or obj is None or ref in created:
                    continue
                restored = restore_object(obj)
                md = restored.get("metadata") or {}
                labels = md.get("labels") or {}
                for key in (settings.LABEL_MANAGED_BY, settings.LABEL_WORKFLOW):
                    labels.pop(key, None)
                (md.get("annotations") or {}).pop(HASH_ANNOTATION, None)
                out[ref] = Manifest(mask_free(restored), f"backup of {ref} taken by sync {sync.id} ({action})")
        return list(out.values()), created


def mask_free(obj: dict[str, Any]) -> dict[str, Any]:
    """Backups are stored unmasked (encrypted); this asserts we never restore a masked value."""
    for field_name in ("data", "stringData"):
        for value in ((obj.get(field_name) or {}) if mask.is_secret(obj) else {}).values():
            if isinstance(value, str) and value.startswith(mask.MASK):
                raise SlipwayError(f"refusing to restore a masked Secret value into {ObjectRef.of(obj)}")
    return obj


def _ref_of(change: dict[str, Any]) -> ObjectRef:
    kind, name = str(change["resource"]).split("/", 1)
    api_version = str(change.get("api_version") or "")
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return ObjectRef(group, kind, change.get("namespace") or "", name)


def _short(rev: str | None) -> str:
    return rev[:12] if rev else ""


def _refusal(plan: Plan) -> str:
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
        start_time=now_rfc3339(),
        commit_hash=None,
        message="",
        kind=kind,
        trigger=trigger,
    )
