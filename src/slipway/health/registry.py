"""The health rule registry: one small function per kind, looked up by (group, kind).

A rule reads one live object and says Healthy, Progressing or Degraded with a message. A kind
without a rule falls back to :func:`generic` (a ``Ready`` condition if there is one, a
``Stalled`` condition means Degraded), and a kind with no conditions at all is healthy once it
exists. Rules check first that the controller has observed the latest generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..kube import Obj
from ..kube.objects import conditions

HEALTHY, PROGRESSING, DEGRADED, MISSING = "Healthy", "Progressing", "Degraded", "Missing"


@dataclass(frozen=True)
class Health:
    status: str
    message: str = ""


Rule = Callable[[Obj], Health]
RULES: dict[tuple[str, str], Rule] = {}


def rule(group: str, kind: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[(group, kind)] = fn
        return fn

    return register


def spec(o: Obj) -> dict[str, Any]:
    return o.get("spec") or {}


def status(o: Obj) -> dict[str, Any]:
    return o.get("status") or {}


def unobserved(o: Obj) -> Health | None:
    generation = (o.get("metadata") or {}).get("generation")
    observed = status(o).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return Health(PROGRESSING, f"waiting for the controller to observe generation {generation}")
    return None


def true(o: Obj, kind: str) -> bool:
    return conditions(o).get(kind, {}).get("status") == "True"


def generic(o: Obj) -> Health:
    # Only an object whose controller reports observedGeneration can be waited on for it; a
    # custom resource nobody reconciles must not wait forever.
    if "observedGeneration" in status(o) and (h := unobserved(o)) is not None:
        return h
    conds = conditions(o)
    stalled = conds.get("Stalled", {})
    if stalled.get("status") == "True":
        return Health(DEGRADED, stalled.get("message") or stalled.get("reason", "stalled"))
    ready = conds.get("Ready")
    if ready is None:
        return Health(HEALTHY, "")
    if ready.get("status") == "True":
        return Health(HEALTHY, ready.get("message", ""))
    return Health(PROGRESSING, ready.get("message") or ready.get("reason") or "not ready")


def hook_outcome(group: str, kind: str, obj: Obj | None) -> Health:
    """A hook is done when it ran to its end: a Pod Succeeded (Running and Ready is not done), a Job
    Complete; any other kind when it is healthy by its rule."""
    if obj is not None and (group, kind) == ("", "Pod"):
        phase = status(obj).get("phase")
        if phase == "Succeeded":
            return Health(HEALTHY, "completed")
        if phase == "Failed":
            return Health(DEGRADED, status(obj).get("message") or status(obj).get("reason") or "pod failed")
        return Health(PROGRESSING, f"phase {phase or 'Pending'}")
    return assess(group, kind, obj)


def assess(group: str, kind: str, obj: Obj | None) -> Health:
    if obj is None:
        return Health(MISSING, "does not exist")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Health(PROGRESSING, "being deleted")
    return RULES.get((group, kind), generic)(obj)
