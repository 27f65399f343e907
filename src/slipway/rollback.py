"""A rollback as a small state machine: restore what a chosen earlier sync applied.

    plan -> backup -> apply -> prune -> health -> record

What it restores is the target sync's desired manifests, plus the backups (slipway's own managed
fields) of what later syncs deleted or replaced and the target lacks; what later syncs created is
deleted. It leaves a hold: auto-sync does not re-apply the revision it rolled back from.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import settings
from .apply.applier import restore_object
from .durations import rfc3339
from .errors import NotFoundError, SlipwayError, SyncFailed
from .kube import ObjectRef
from .plan import mask
from .plan.model import Plan
from .plan.ownership import HASH_ANNOTATION
from .render import Manifest
from .results import SyncResult

if TYPE_CHECKING:
    pass
from .run import Run, refused_or_failed, short

log = logging.getLogger("slipway.sync")


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
        if target is not None:  # the commit it returns to, as that sync recorded it
            result.commit_message, result.commit_author = target.commit_message, target.commit_author
        before = store.workflow_state(wf.id)  # what a refusal leaves as it was
        store.start_sync(result)
        log.info(
            "rollback %s of %s from %s to %s: %s",
            result.id,
            wf.id,
            short(from_sync.commit_hash),
            short(result.commit_hash),
            reason,
        )
        failure: str | None = None
        plan: Plan | None = None
        with self.failures("rollback") as failed:
            self.stage("plan")
            manifests, created = self.restore_set(target, rolled)
            planner_wf = replace(wf, sync_policy=replace(wf.sync_policy, auto_prune=True, allow_empty=True))
            plan = self.plan = self.engine.planner(planner_wf, self.kube, self.cancel).plan(
                manifests, store.inventory(wf.id), result.commit_hash
            )
            deletions = [d for d in plan.deletions if wf.sync_policy.auto_prune or d.ref in created]
            plan.orphans += [d for d in plan.deletions if d not in deletions]
            plan.deletions = deletions
            kept = {(d.ref.resource, d.namespace) for d in deletions}
            result.changes = [
                c.to_record() for c in plan.changes if c.type != "delete" or (c.resource, c.namespace) in kept
            ]
            if plan.blocking:
                raise refused_or_failed(plan)
            ok, why = self.converge(plan)
            if not ok:
                raise SyncFailed(why)
        failure = failed.message
        result.metrics = self.metrics(plan)
        result.end_time = rfc3339()
        to = short(result.commit_hash) or "the state before the first sync"
        if failure is None:
            result.status = "succeeded"
            result.message = f"Rolled back from {short(from_sync.commit_hash)} to {to}: {reason}"
            inventory = self.inventory_after(plan)
            for it in plan.orphans if plan else []:
                inventory[it.ref] = it.api_version
            status = "synced" if from_sync.status == "succeeded" else "failed"
            self.record_axes(inventory)
            store.finish_sync(
                result,
                workflow_status=status,
                status_message=result.message,
                inventory=inventory,
                applied_revision=result.commit_hash,
                hold_revision=from_sync.commit_hash,
                mark_rolled_back=[s.id for s in rolled],
                history_limit=wf.history_limit,
            )
        elif failed.refused:  # nothing applied: its own outcome, and the workflow's status stays as it was
            result.status, result.message = "refused", f"Rollback to {to} {failure}"
            self.record_axes(None)
            store.finish_sync(result, workflow_status=str(before["status"]), status_message=result.message)
        else:
            result.status = "failed"
            result.message = f"Rollback to {to} failed: {failure}"
            inventory = self.inventory_after(plan)
            self.record_axes(inventory)
            store.finish_sync(result, workflow_status="degraded", status_message=result.message, inventory=inventory)
        log.info("rollback %s of %s: %s", result.id, wf.id, result.message)
        return result

    def restore_set(self, target: SyncResult | None, rolled: list[SyncResult]) -> tuple[list[Manifest], set[ObjectRef]]:
        """Target's desired manifests, plus backups of what later syncs deleted or replaced that it lacks."""
        out: dict[ObjectRef, Manifest] = {}
        # Syncs recorded before the namespace create_namespace makes was left out of "desired": not Git's.
        made = (
            ObjectRef("", "Namespace", "", self.wf.destination.namespace)
            if self.wf.sync_policy.create_namespace
            else None
        )
        if made is not None and made in self.store.inventory(self.wf.id):
            made = None  # Git declares it
        if target is not None:
            for ref, _, _, obj in self.store.sync_objects(target.id, "desired"):
                if obj is not None and ref != made:
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
                for key in (settings.LABEL_MANAGED_BY, settings.LABEL_WORKFLOW, settings.LABEL_INSTANCE):
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


def choose(
    workflow_id: str, history: list[SyncResult], to: str | None
) -> tuple[SyncResult, SyncResult | None, list[SyncResult]]:
    """(the sync rolled back from, the successful sync to roll back to or None for "before the first",
    the syncs rolled back) from a workflow's history, newest first; NotFoundError when there is none."""
    # A refused sync applied nothing: there is nothing of it to roll back.
    live = [s for s in history if not s.rolled_back and s.status not in ("running", "refused")]
    if not live:
        raise NotFoundError(f"workflow {workflow_id} has no sync to roll back")
    if to is not None:
        target = next((s for s in live if s.id == to), None)
        if target is None or target.status != "succeeded":
            raise NotFoundError(f"workflow {workflow_id} has no successful sync {to!r} to roll back to")
    else:
        target = next((s for s in live[1:] if s.status == "succeeded"), None)
    return live[0], target, live[: live.index(target)] if target is not None else live
