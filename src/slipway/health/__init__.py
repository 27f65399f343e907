"""Health: one registry of per-kind rules (:mod:`.registry`, whose :func:`assess` is the one entry
point), the rules grouped by API group, one file each (:mod:`.core`, :mod:`.apps`, :mod:`.batch`,
:mod:`.network`, :mod:`.apiextensions`), the kstatus reading of every other kind (:mod:`.kstatus`),
Lua customizations in Argo CD's format (:mod:`.customizations`, run by :mod:`.lua`), and the wait
that polls them (:mod:`.wait`). ``docs/health.md`` lists the rules in the same words.
"""

from __future__ import annotations

from . import apiextensions, apps, batch, core, network  # noqa: F401  (importing registers their rules)
from .kstatus import generic
from .registry import (
    DEGRADED,
    HEALTHY,
    MISSING,
    PROGRESSING,
    RULES,
    SETTLED,
    STATUSES,
    SUSPENDED,
    UNKNOWN,
    Health,
    assess,
    hook_outcome,
    rule,
    worst,
)  # fmt: skip
from .wait import JUDGED_ONCE, Target, check, wait

__all__ = [
    "DEGRADED", "HEALTHY", "JUDGED_ONCE", "MISSING", "PROGRESSING", "RULES", "SETTLED", "STATUSES", "SUSPENDED",
    "UNKNOWN", "Health", "Target", "assess", "check", "generic", "hook_outcome", "rule", "wait", "worst",
]  # fmt: skip
