"""The health rule registry: one small function per kind, looked up by (group, kind).

A health is one of Argo CD's six statuses with a message. :func:`assess` is the one entry point:
a missing object is Missing, one being deleted Progressing; then a Lua customization for the kind
(:mod:`.customizations`, Argo CD's format) if one matches, else the kind's built-in rule, else
:func:`.kstatus.generic` (the Kubernetes status conventions as kstatus reads them). Rules check
first that the controller has observed the latest generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..kube import Obj
from ..kube.objects import conditions

if TYPE_CHECKING:
    from .customizations import Customizations

HEALTHY, SUSPENDED, PROGRESSING, MISSING, DEGRADED, UNKNOWN = (
    "Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown"
)  # fmt: skip
# Argo CD's order, best first: a group of objects is as healthy as its worst.
STATUSES = (HEALTHY, SUSPENDED, PROGRESSING, MISSING, DEGRADED, UNKNOWN)
# What ends a sync's health wait for an object: a Suspended object is as its spec asks.
SETTLED = frozenset({HEALTHY, SUSPENDED})


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


def worst(statuses: Iterable[str]) -> str:
    """The worst of some statuses in Argo CD's order (Healthy for none); an unknown word counts as Unknown."""
    rank = {s: i for i, s in enumerate(STATUSES)}
    return max(statuses, key=lambda s: rank.get(s, len(STATUSES)), default=HEALTHY)


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


def hook_outcome(group: str, kind: str, obj: Obj | None) -> Health:
    """A hook is done when it ran to its end: a Pod Succeeded (Running and Ready is not done), a Job
    Complete; any other kind when it is healthy by its rule (Suspended is not done: it never ends)."""
    if obj is not None and (group, kind) == ("", "Pod"):
        phase = status(obj).get("phase")
        if phase == "Succeeded":
            return Health(HEALTHY, "completed")
        if phase == "Failed":
            return Health(DEGRADED, status(obj).get("message") or status(obj).get("reason") or "pod failed")
        return Health(PROGRESSING, f"phase {phase or 'Pending'}")
    verdict = assess(group, kind, obj)
    if verdict.status == SUSPENDED:
        return Health(PROGRESSING, f"suspended, so it cannot run to its end: {verdict.message}".rstrip(": "))
    return verdict


def assess(group: str, kind: str, obj: Obj | None, customizations: Customizations | None = None) -> Health:
    """The health of one live object (None: it does not exist). ``customizations`` defaults to the
    process's (:func:`.customizations.default`)."""
    if obj is None:
        return Health(MISSING, "does not exist")
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Health(PROGRESSING, "being deleted")
    from . import customizations as custom
    from .kstatus import generic

    script = (customizations if customizations is not None else custom.default()).find(group, kind)
    if script is not None:
        return script.run(obj)
    return RULES.get((group, kind), generic)(obj)
