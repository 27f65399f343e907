"""A workflow's two axes, as Argo CD users know them, and the last operation beside them.

*Sync status* compares Git (the branch's head, rendered for the workflow's own path) with the
live objects: ``Synced`` when a sync would change nothing, ``OutOfSync`` with the count of
objects it would create, change, re-create (``missing``: in the inventory, deleted live) and
prune (``extra``), ``Unknown`` when Git or the cluster could not be read. *Health* is the worst
health of the live objects (Argo CD's order). Both come from one plan that applies nothing, so a
commit that changes nothing the workflow renders leaves it ``Synced``. The *operation* (the last
sync, rollback or removal and its phase) is a third, separate thing, read from the history.

:func:`compute` is the one place the axes are computed; the engine stores its summary with a
timestamp, so a list shows what was last computed, with its age, and every front uses the same words.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import health
from .errors import Cancelled, SlipwayError, describe
from .items import Item
from .results import HEALTH_STATUSES, SYNC_STATUSES, age, short_age, sync_words

if TYPE_CHECKING:
    from .engine import Engine
    from .kube import ObjectRef
    from .plan.model import Plan
    from .results import SyncResult

OBJECT_SYNC = ("Synced", "OutOfSync", "Missing", "Extra")
HEALTH_ORDER = HEALTH_STATUSES  # Argo CD's order, best first: the workflow's health is its worst object's
PHASES = {"running": "Running", "succeeded": "Succeeded", "failed": "Failed", "interrupted": "Failed",
          "refused": "Refused"}  # fmt: skip


def _object(it: Item, sync: str) -> dict[str, Any]:
    if it.info is None or it.pending:
        verdict = {"status": "Unknown", "message": "the cluster does not serve this kind yet"}
    else:
        h = health.assess(it.info.group, it.info.kind, it.live)
        verdict = {"status": h.status, "message": h.message}
    return {
        "group": it.ref.group,
        "kind": it.ref.kind,
        "namespace": it.namespace,
        "name": it.ref.name,
        "sync_status": sync,
        "health": verdict,
    }


def of_plan(plan: Plan, inventory: dict[ObjectRef, str]) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(sync_status, health, objects) of a plan made against Git: see the module's docstring."""
    counts = {"created": 0, "changed": 0, "missing": 0, "extra": 0}
    objects = []
    for it in sorted(plan.items, key=Item.sort_key):
        if it.action == "unchanged":
            sync = "Synced"
        elif it.action == "create" and it.ref in inventory:
            sync, counts["missing"] = "Missing", counts["missing"] + 1
        elif it.action == "create":
            sync, counts["created"] = "OutOfSync", counts["created"] + 1
        else:  # update, re-create, or blocked by a conflict
            sync, counts["changed"] = "OutOfSync", counts["changed"] + 1
        objects.append(_object(it, sync))
    for it in sorted([*plan.deletions, *plan.orphans], key=Item.sort_key):
        counts["extra"] += 1
        objects.append(_object(it, "Extra"))
    status = "OutOfSync" if any(counts.values()) else "Synced"
    return {"status": status, **counts, "revision": plan.revision}, aggregate(objects), objects


def aggregate(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The workflow's health: its worst object's (nothing declared is healthy, as in Argo CD)."""
    worst: dict[str, Any] | None = None
    for o in objects:
        if o["sync_status"] == "Extra":
            continue  # to be pruned: not part of what the workflow is
        h = o["health"]
        rank = HEALTH_ORDER.index(h["status"]) if h["status"] in HEALTH_ORDER else len(HEALTH_ORDER) - 1
        if worst is None or rank > worst["rank"]:
            worst = {"rank": rank, "status": HEALTH_ORDER[rank], "message": _about(o, h["message"])}
    if worst is None or worst["status"] == "Healthy":
        return {"status": "Healthy", "message": ""}
    return {"status": worst["status"], "message": worst["message"]}


def _about(o: dict[str, Any], message: str) -> str:
    where = f"{o['namespace']}/" if o["namespace"] else ""
    return f"{o['kind']}/{where}{o['name']}" + (f": {message}" if message else "")


def operation(result: SyncResult | None) -> dict[str, Any] | None:
    """The last sync, rollback or removal as an operation: kind, phase (Running, Succeeded, Failed,
    Refused) and its message; None when there was none."""
    if result is None:
        return None
    return {
        "kind": result.kind,
        "phase": PHASES.get(result.status, result.status.capitalize()),
        "message": result.message,
        "sync_id": result.id,
        "revision": result.commit_hash,
        "trigger": result.trigger,
        "started_at": result.start_time,
        "finished_at": result.end_time,
    }


def compute(
    engine: Engine,
    workflow_id: str,
    cancel: threading.Event | None = None,
    inventory: dict[ObjectRef, str] | None = None,
    rendered: tuple[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Plan the branch's head against the live objects (nothing applied) and return the axes:
    ``{sync_status, health, objects, assessed_at}``. When Git or the render fails the sync status
    is Unknown (with why), and health still comes from the objects the workflow owns. ``rendered``
    (revision, manifests): a run's own render of that revision, not rendered again."""
    wf = engine.store.get_workflow(workflow_id)
    inventory = engine.store.inventory(wf.id) if inventory is None else inventory
    try:
        repo = engine.store.get_repository(wf.repository)
        revision = engine.fetch(repo, policy=wf.sync_policy.retry, cancel=cancel)
        if rendered is not None and rendered[0] == revision:  # the run that asks rendered this very revision
            manifests = rendered[1]
        else:
            manifests = engine.render(wf, repo, revision, cancel)
        # Checked against the schemas here, as a sync checks: no dry-run per object to create.
        plan = engine.planner(wf, engine.kube_for(wf), cancel, local_checks=True).plan(manifests, inventory, revision)
    except Cancelled:
        raise
    except SlipwayError as e:
        why = describe(e)
        sync: dict[str, Any] = {"status": "Unknown", "created": 0, "changed": 0, "missing": 0, "extra": 0,
                                "revision": None, "message": why}  # fmt: skip
        try:
            owned = engine.removal_plan(workflow_id, cancel)  # what it owns, read live
            objects = [_object(it, "Unknown") for it in sorted(owned.deletions, key=Item.sort_key)]
            verdict = aggregate(objects)
        except SlipwayError as e2:
            objects, verdict = [], {"status": "Unknown", "message": describe(e2)}
    else:
        sync, verdict, objects = of_plan(plan, inventory)
        sync["message"] = ""
    return {"sync_status": sync, "health": verdict, "objects": objects, "assessed_at": now()}


def last_operation(engine: Engine, workflow_id: str, state: dict[str, Any]) -> dict[str, Any] | None:
    """The operation running now (the claim's), else the newest recorded (a sync, a rollback...)."""
    if state.get("sync_id"):
        try:
            return operation(engine.store.get_sync(state["sync_id"]))
        except SlipwayError:
            pass  # not recorded yet
    newest = engine.store.history(workflow_id, 1)
    return operation(newest[0]) if newest else None


def report(engine: Engine, workflow_id: str, *, live: bool, cancel: threading.Event | None = None) -> dict[str, Any]:
    """The seed's status table plus ``sync_status``, ``health``, ``operation``, ``assessed_at`` and
    ``assessed_age`` (seconds): computed now when ``live`` (and stored), else as last computed."""
    row = engine.status(workflow_id)
    computed = engine.assess(workflow_id, cancel) if live else None
    state = engine.store.workflow_state(workflow_id)
    kept = computed or state.get("assessment") or {}
    row["sync_status"] = kept.get("sync_status") or {"status": "Unknown", "created": 0, "changed": 0,
                                                      "missing": 0, "extra": 0, "revision": None,
                                                      "message": "not computed yet"}  # fmt: skip
    row["health"] = kept.get("health") or {"status": "Unknown", "message": "not computed yet"}
    row["operation"] = last_operation(engine, workflow_id, state)
    row["assessed_at"] = kept.get("assessed_at")
    row["assessed_age"] = age(kept.get("assessed_at"))
    if computed is not None:
        row["objects"] = computed["objects"]
    return row


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary(axes: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a computation (no objects): the two axes and when."""
    return {"sync_status": axes["sync_status"], "health": axes["health"], "assessed_at": axes["assessed_at"]}


__all__ = ["HEALTH_STATUSES", "OBJECT_SYNC", "SYNC_STATUSES", "age", "aggregate", "compute", "of_plan", "operation",
           "report", "short_age", "summary", "sync_words"]  # fmt: skip
