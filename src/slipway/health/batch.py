"""Health of batch/Job: Complete is healthy, Failed is degraded, suspended is healthy."""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, Health, rule, spec, status


@rule("batch", "Job")
def job(o: Obj) -> Health:
    conds = conditions(o)
    if conds.get("Failed", {}).get("status") == "True":
        return Health(DEGRADED, conds["Failed"].get("message") or conds["Failed"].get("reason", "job failed"))
    if conds.get("Complete", {}).get("status") == "True":
        return Health(HEALTHY, "completed")
    if spec(o).get("suspend"):
        return Health(HEALTHY, "suspended")
    st = status(o)
    return Health(PROGRESSING, f"{st.get('succeeded', 0)} succeeded, {st.get('active', 0)} running")
