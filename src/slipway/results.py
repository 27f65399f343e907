"""The results every stage and front shares: a Change, a Conflict, a sync's metrics and its record.

A :class:`Change` is the one record of what happens to one object: plan, apply, history, the CLI,
Lua and the server all print it. ``to_seed`` gives exactly the seed's tables.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

IMPACT_LEVELS = ("low", "medium", "high", "critical")


@dataclass
class Change:
    """What happens (or would happen) to one object: the unit plan, apply, history and fronts share."""

    type: str  # create | update | delete
    resource: str  # Kind/name
    namespace: str | None
    api_version: str
    impact: str = "low"
    current_state: dict[str, Any] | None = None  # masked, normalized
    desired_state: dict[str, Any] | None = None  # masked, normalized
    reasons: list[str] = field(default_factory=list)  # why this impact
    drifted: bool = False  # live fields slipway applied were changed outside slipway
    recreate: bool = False  # an immutable field changes: delete and create
    wave: int = 0  # the sync wave it is applied in (deletions: pruned in reverse wave order)
    note: str = ""  # a remark the diff's headline carries
    _diff: str | None = field(default=None, repr=False, compare=False)

    @property
    def diff(self) -> str:
        """The readable diff, made when first read: a plan of a thousand new objects is applied
        long before anyone reads the YAML of each (the CLI shows them with --diff)."""
        if self._diff is None:
            from .plan.textdiff import render_diff

            self._diff = render_diff(self.type, self.resource, self.current_state, self.desired_state, note=self.note)
        return self._diff

    def headline(self) -> str:
        """The diff's first line (``+ Creating Deployment/web with 3 replicas``), without making the diff."""
        from .plan.textdiff import headline

        return headline(self.type, self.resource, self.desired_state)

    def to_seed(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "resource": self.resource,
            "namespace": self.namespace,
            "impact": self.impact,
            "diff": self.diff,
            "wave": self.wave,  # beyond the seed: when in the sync it happens
        }
        if self.current_state is not None:
            out["current_state"] = self.current_state
        if self.desired_state is not None:
            out["desired_state"] = self.desired_state
        return out

    def to_record(self) -> dict[str, Any]:
        """What history keeps: the seed's fields plus identity and why."""
        return {**self.to_seed(), "api_version": self.api_version, "reasons": self.reasons, "drifted": self.drifted}


@dataclass
class Conflict:
    resource: str
    namespace: str | None
    type: str  # resource_exists | out_of_sync | validation
    description: str
    suggestions: list[str]
    current_state: dict[str, Any] | None = None
    desired_state: dict[str, Any] | None = None

    @property
    def blocking(self) -> bool:
        return self.type in ("resource_exists", "validation")

    def to_seed(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "namespace": self.namespace,
            "type": self.type,
            "description": self.description,
            "current_state": self.current_state,
            "desired_state": self.desired_state,
            "suggestions": list(self.suggestions),
        }


@dataclass
class SyncMetrics:
    duration: str = "0.0s"
    resources_processed: int = 0
    resources_applied: int = 0
    resources_deleted: int = 0
    resources_skipped: int = 0
    conflicts_resolved: int = 0


@dataclass
class SyncResult:
    id: str
    workflow_id: str
    status: str  # running | succeeded | failed | refused (nothing applied) | interrupted
    start_time: str
    commit_hash: str | None
    message: str
    metrics: SyncMetrics = field(default_factory=SyncMetrics)
    kind: str = "sync"  # sync | rollback
    end_time: str | None = None
    trigger: str = "manual"
    changes: list[dict[str, Any]] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    rolled_back: bool = False
    reason: str | None = None
    target_sync_id: str | None = None
    from_revision: str | None = None
    actor: str | None = None  # who asked: an API token's name, the OS user of a CLI; None for the controller
    commit_message: str | None = None  # the commit's subject, as Git has it (Secret values masked)
    commit_author: str | None = None  # "Name <email>"

    def to_seed(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "start_time": self.start_time,
            "commit_hash": self.commit_hash,
            "message": self.message,
            "metrics": asdict(self.metrics),
        }


# -- the words of a workflow's two axes (computed in slipway.axes), for every front ------------------

SYNC_STATUSES = ("Synced", "OutOfSync", "Unknown")
HEALTH_STATUSES = ("Healthy", "Suspended", "Progressing", "Missing", "Degraded", "Unknown")  # best first


def age(assessed_at: str | None, at: float | None = None) -> float | None:
    """Seconds since ``assessed_at`` (an RFC 3339 time), or None."""
    if not assessed_at:
        return None
    try:
        then = datetime.strptime(assessed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return max(0.0, (time.time() if at is None else at) - then)


def short_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def sync_words(sync: dict[str, Any] | None) -> str:
    """``Synced``, ``Unknown``, or ``OutOfSync (1 missing, 2 changed)``: the same words in every text front."""
    if not sync:
        return "Unknown"
    if sync["status"] != "OutOfSync":
        return str(sync["status"])
    parts = [f"{sync[k]} {k}" for k in ("created", "changed", "missing", "extra") if sync.get(k)]
    return f"OutOfSync ({', '.join(parts)})" if parts else "OutOfSync"
