"""One rule for every route that plans: an operator computes, a viewer reads what was last computed.

A plan fetches from Git, renders (Helm, Kustomize, Jsonnet: code from the repository) and
dry-runs against the cluster: work a caller can make the server do, at will. So every route
that plans (``/diff``, ``/resources``, with or without ``?manifests=true``) plans only for an
operator or above; each plan it computes is kept here, per workflow, with when and for whom.
A viewer is answered from that — the same answer the operator got, Secret values masked as for
everyone, with its ``computed`` time — and never causes a fetch, a render or a dry-run; before
any plan was computed for the workflow on this server, a viewer gets 403 saying so.

Bounded: the newest plan of at most :data:`WORKFLOWS` workflows and :data:`OBJECTS` objects in
all (least recently computed go first). Changing or removing a workflow forgets its plan.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..durations import rfc3339
from .auth import Principal, actor
from .context import ApiError, Context

if TYPE_CHECKING:
    from ..plan.model import Plan

WORKFLOWS = 128
OBJECTS = 10_000
PLANS = "operator"  # the least role that makes the server plan


@dataclass(frozen=True)
class Computed:
    plan: Plan
    at: float
    by: str

    def meta(self) -> dict[str, Any]:
        return {"at": rfc3339(self.at), "by": self.by, "revision": self.plan.revision}

    @property
    def size(self) -> int:
        return len(self.plan.items) + len(self.plan.deletions) + len(self.plan.orphans)


class Plans:
    """The newest plan computed for each workflow through this server."""

    def __init__(self, workflows: int = WORKFLOWS, objects: int = OBJECTS) -> None:
        self.workflows = workflows
        self.objects = objects
        self._table: OrderedDict[str, Computed] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, workflow_id: str, computed: Computed) -> None:
        with self._lock:
            self._table[workflow_id] = computed
            self._table.move_to_end(workflow_id)
            while len(self._table) > self.workflows or (
                len(self._table) > 1 and sum(c.size for c in self._table.values()) > self.objects
            ):
                self._table.popitem(last=False)

    def get(self, workflow_id: str) -> Computed | None:
        with self._lock:
            return self._table.get(workflow_id)

    def forget(self, workflow_id: str) -> None:
        with self._lock:
            self._table.pop(workflow_id, None)


def planned(ctx: Context, workflow_id: str, who: Principal) -> Computed:
    """A plan of the workflow: computed now for an operator or above, else the last one computed."""
    if who.allows(PLANS):
        computed = Computed(ctx.engine.plan(workflow_id, cancel=ctx.cancel), time.time(), actor(who))
        ctx.plans.put(workflow_id, computed)
        return computed
    ctx.engine.workflow(workflow_id)  # 404 for a workflow that does not exist, whatever the role
    last = ctx.plans.get(workflow_id)
    if last is None:
        raise ApiError(
            403,
            f"token {who.name!r} has role {who.role}; planning workflow {workflow_id} (fetch, render, dry-run) "
            f"needs {PLANS} or above, and nothing was computed for it on this server yet: a viewer reads "
            f"the plan an operator's diff or resources view last computed",
        )
    return last


__all__ = ["OBJECTS", "PLANS", "WORKFLOWS", "Computed", "Plans", "planned"]
