"""Health of any kind without a rule or a customization: the Kubernetes status conventions, as kstatus reads them.

In order: ``status.observedGeneration`` behind ``metadata.generation`` is Progressing (only when
the object reports one: a custom resource nobody reconciles must not wait forever); a
``Reconciling`` condition True is Progressing; ``Stalled`` True is Degraded; then ``Ready``: True
is Healthy, False (or Unknown) Progressing. An object with none of these is Healthy once it exists.
"""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, Health, status, unobserved


def generic(o: Obj) -> Health:
    if "observedGeneration" in status(o) and (h := unobserved(o)) is not None:
        return h
    conds = conditions(o)
    reconciling = conds.get("Reconciling", {})
    if reconciling.get("status") == "True":
        return Health(PROGRESSING, reconciling.get("message") or reconciling.get("reason") or "reconciling")
    stalled = conds.get("Stalled", {})
    if stalled.get("status") == "True":
        return Health(DEGRADED, stalled.get("message") or stalled.get("reason") or "stalled")
    ready = conds.get("Ready")
    if ready is None:
        return Health(HEALTHY, "")
    if ready.get("status") == "True":
        return Health(HEALTHY, ready.get("message", ""))
    return Health(PROGRESSING, ready.get("message") or ready.get("reason") or "not ready")
