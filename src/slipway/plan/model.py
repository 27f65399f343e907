"""A plan: what a sync would do, as items, the seed's changes, conflicts and warnings.

:meth:`Plan.to_seed` is exactly the table the seed's ``generate_diff`` documents;
:meth:`Plan.fingerprint` identifies what the plan would do, so a sync can refuse to apply anything
other than the plan a person approved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..items import HookItem, Item
from ..results import Change, Conflict
from .normalize import normalize
from .ownership import content_hash


@dataclass
class Plan:
    workflow_id: str
    revision: str | None
    generated_at: str
    items: list[Item] = field(default_factory=list)
    deletions: list[Item] = field(default_factory=list)
    orphans: list[Item] = field(default_factory=list)
    hooks: list[HookItem] = field(default_factory=list)  # run in their phases, never part of the desired state
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # prunes held back (a Namespace or CRD that may hold others')
    empty_render_refused: bool = False

    @property
    def blocking(self) -> list[Conflict]:
        return [c for c in self.conflicts if c.blocking]

    def summary(self) -> dict[str, int]:
        count = lambda t: sum(1 for c in self.changes if c.type == t)  # noqa: E731
        return {
            "total_changes": len(self.changes),
            "created_resources": count("create"),
            "updated_resources": count("update"),
            "deleted_resources": count("delete"),
            "conflict_count": len(self.conflicts),
            "warning_count": len(self.warnings),
        }

    def fingerprint(self) -> str:
        """Identifies what this plan would do, so a sync can refuse a plan other than the one approved.

        It is made of what Git declares and what was live — never of what the server's dry-run
        generated (a new Job's controller-uid, a Service's clusterIP), which differs every time.
        """
        parts = [self.revision or ""]
        for it in [*self.items, *self.deletions]:
            if it.action == "unchanged":
                continue
            desired = content_hash(it.desired) if it.desired is not None else ""
            live = content_hash(normalize(it.live)) if it.live is not None else ""
            parts.append(f"{it.action}|{it.ref.key()}|{desired}|{live}")
        parts += [f"hook|{h.identity}|{content_hash(h.desired)}" for h in self.hooks if h.spec.runs]
        parts += [f"{c.type}|{c.namespace}|{c.resource}" for c in self.conflicts]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def to_seed(self) -> dict[str, Any]:
        """Exactly the table the seed's ``generate_diff`` documents."""
        return {
            "workflow_id": self.workflow_id,
            "generated_at": self.generated_at,
            "summary": self.summary(),
            "changes": [c.to_seed() for c in self.changes],
            "conflicts": [c.to_seed() for c in self.conflicts],
            "warnings": list(self.warnings),
            # Beyond the seed: the hooks a sync would run, in order, and those it never runs.
            "hooks": [hook_seed(h) for h in self.hooks],
        }


def hook_seed(h: HookItem) -> dict[str, Any]:
    return {
        "resource": h.resource,
        "namespace": h.ref.namespace or None,
        "phases": list(h.spec.phases),
        "wave": h.spec.wave,
        "delete_policies": sorted(h.spec.delete_policies),
        "runs": h.spec.runs,
        "note": h.spec.why_not_run,
        "source": h.source,
    }


__all__ = ["HookItem", "Item", "Plan"]
