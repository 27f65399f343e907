"""Health of batch kinds: a Job Complete is Healthy, Failed Degraded, suspended Suspended; a CronJob by its last run."""

from __future__ import annotations

from ..kube import Obj
from ..kube.objects import conditions
from .registry import DEGRADED, HEALTHY, PROGRESSING, SUSPENDED, Health, rule, spec, status


@rule("batch", "Job")
def job(o: Obj) -> Health:
    conds = conditions(o)
    if conds.get("Failed", {}).get("status") == "True":
        return Health(DEGRADED, conds["Failed"].get("message") or conds["Failed"].get("reason", "job failed"))
    if conds.get("Complete", {}).get("status") == "True":
        return Health(HEALTHY, "completed")
    if spec(o).get("suspend"):
        return Health(SUSPENDED, "job is suspended")
    st = status(o)
    return Health(PROGRESSING, f"{st.get('succeeded', 0)} succeeded, {st.get('active', 0)} running")


@rule("batch", "CronJob")
def cronjob(o: Obj) -> Health:
    if spec(o).get("suspend"):
        return Health(SUSPENDED, "cron job is suspended")
    st = status(o)
    scheduled, succeeded = st.get("lastScheduleTime"), st.get("lastSuccessfulTime")
    if not scheduled:
        return Health(HEALTHY, "not scheduled yet")
    if st.get("active"):
        return Health(PROGRESSING, f"{len(st['active'])} job(s) running")
    # RFC 3339 times in UTC ("Z") compare as strings.
    if not succeeded:
        return Health(DEGRADED, f"the job scheduled at {scheduled} did not succeed, nor did any before it")
    if str(succeeded) < str(scheduled):
        return Health(DEGRADED, f"the job scheduled at {scheduled} did not succeed")
    return Health(HEALTHY, f"last succeeded at {succeeded}")
