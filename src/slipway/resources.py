"""A workflow's objects as a table: each with what a sync would do to it and its health now.

Made from a plan (which already read every live object it compares), so it costs one plan and no
further request: what Git declares (``declared``), what the workflow owns and Git no longer
declares (pruned on the next sync, or left as an orphan when pruning is off). ``sync`` is
``Synced`` when a sync would leave the object as it is and ``OutOfSync`` otherwise; ``health`` is
the object's kind rule (:mod:`.health`) applied to the live object. With ``manifests``, each row
also has the object as YAML: ``live`` (with its status, without the server's bookkeeping) and
``desired`` (what Git declares), Secret values masked the way diffs mask them.
"""

from __future__ import annotations

from typing import Any

from . import health
from .items import Item
from .kube import Obj
from .plan import mask
from .plan.model import Plan
from .plan.normalize import display
from .plan.textdiff import to_yaml

_UNKNOWN = {"status": "Unknown", "message": "the cluster does not serve this kind yet"}


def _row(it: Item, action: str, declared: bool, manifests: bool) -> dict[str, Any]:
    if it.info is None or it.pending:
        verdict = _UNKNOWN
    else:
        h = health.assess(it.info.group, it.info.kind, it.live)
        verdict = {"status": h.status, "message": h.message}
    row = {
        "resource": it.ref.resource,
        "kind": it.ref.kind,
        "name": it.ref.name,
        "namespace": it.namespace,
        "api_version": it.api_version,
        "declared": declared,
        "action": action,
        "sync": "Synced" if action == "unchanged" else "OutOfSync",
        "drifted": it.drifted,
        "health": verdict,
    }
    if manifests:
        live, desired = _manifests(it, declared)
        row["live"], row["desired"] = to_yaml(live), to_yaml(desired)
    return row


def _manifests(it: Item, declared: bool) -> tuple[Obj | None, Obj | None]:
    live = None
    if it.live is not None:
        live = display(it.live)
        if it.live.get("status") is not None:
            live["status"] = it.live["status"]
    desired = display(it.manifest or it.desired or {}) if declared else None
    return mask.mask_pair(live, desired)


def of_plan(plan: Plan, *, manifests: bool = False) -> list[dict[str, Any]]:
    """One row per object the plan knows: declared items, then deletions (prune) and orphans."""
    rows = [_row(it, it.action, True, manifests) for it in sorted(plan.items, key=Item.sort_key)]
    rows += [_row(it, "prune", False, manifests) for it in sorted(plan.deletions, key=Item.sort_key)]
    rows += [_row(it, "orphan", False, manifests) for it in sorted(plan.orphans, key=Item.sort_key)]
    return rows


__all__ = ["of_plan"]
