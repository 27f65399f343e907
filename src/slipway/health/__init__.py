"""Health: one registry of per-kind rules (:mod:`.registry`), the rules grouped by API group, one
file each (:mod:`.core`, :mod:`.apps`, :mod:`.batch`, :mod:`.apiextensions`), and the wait that polls
them (:mod:`.wait`). ``docs/health.md`` lists the rules in the same words.
"""

from __future__ import annotations

from . import apiextensions, apps, batch, core  # noqa: F401  (importing registers their rules)
from .registry import DEGRADED, HEALTHY, MISSING, PROGRESSING, RULES, Health, assess, generic, hook_outcome, rule
from .wait import JUDGED_ONCE, Target, check, wait

__all__ = [
    "DEGRADED", "HEALTHY", "JUDGED_ONCE", "MISSING", "PROGRESSING", "RULES", "Health", "Target", "assess", "check",
    "generic", "hook_outcome", "rule", "wait",
]  # fmt: skip
