"""The plan's unit of work, shared by plan/ (which makes items) and apply/ (which carries them out).

An :class:`Item` is one object of a plan — desired, or to be deleted — with what slipway will do
to it and what the server answered. It lives here, beside the order table, so the planner and
the applier each depend on it and never on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import order
from .kube import Obj, ObjectRef, ResourceInfo
from .waves import PHASES, HookSpec


@dataclass
class Item:
    ref: ObjectRef
    api_version: str
    info: ResourceInfo | None
    desired: Obj | None  # stamped manifest; None for deletions
    source: str
    manifest: Obj | None = None  # what Git declares (namespace defaulted, not stamped): kept with the sync
    live: Obj | None = None
    # What the server answered for our apply: the dry-run's object while planning, then the applied one.
    returned: Obj | None = None
    action: str = "unchanged"  # create | update | delete | unchanged | blocked
    pending: bool = False  # its namespace or CRD does not exist yet: no dry-run possible
    drifted: bool = False
    recreate: bool = False
    conflict_fields: list[str] = field(default_factory=list)
    error: str | None = None
    tracked: bool = True  # recorded in the inventory once applied (a namespace create_namespace made is not)
    wave: int = 0  # its sync wave (annotations); within a wave, the order table decides
    # sync_policy.ignore_differences as they apply to this object (plan.ignore.Ignored), or None.
    ignored: Any = None

    def view(self, obj: Obj) -> Obj:
        """``obj`` as diffs and comparisons see it: without the fields ignore_differences leaves alone."""
        return obj if self.ignored is None else self.ignored.view(obj)

    @property
    def namespace(self) -> str | None:
        return self.ref.namespace or None

    def sort_key(self) -> tuple[int, int, int, str, str]:
        return (self.wave, order.tier(self.ref.kind), order.rank(self.ref.kind), self.ref.namespace, self.ref.name)


@dataclass
class HookItem:
    """A hook of the plan: an object run in a phase of the sync, never part of the desired state."""

    ref: ObjectRef  # for a generateName hook, the name is the prefix
    api_version: str
    info: ResourceInfo | None
    desired: Obj  # stamped, with the hook's identity label
    source: str
    spec: HookSpec
    identity: str
    generate: bool = False  # metadata.generateName: each run makes a new object
    pending: bool = False  # its namespace or kind does not exist yet: validated when it runs
    error: str | None = None

    @property
    def resource(self) -> str:
        return f"{self.ref.kind}/{self.ref.name}*" if self.generate else self.ref.resource

    def sort_key(self) -> tuple[int, int, int, str, str]:
        """The order hooks of one phase run in: wave, then kind order, then name."""
        return (self.spec.wave, order.tier(self.ref.kind), order.rank(self.ref.kind), self.ref.namespace,
                self.ref.name)  # fmt: skip

    def plan_key(self) -> tuple[int, int, int, int, str, str]:
        """The order a plan lists hooks in: by the first phase they run in (PreSync, Sync, PostSync,
        SyncFail; those never run last), then as that phase runs them."""
        first = min((PHASES.index(p) for p in self.spec.phases if p in PHASES), default=len(PHASES))
        return (first, *self.sort_key())


__all__ = ["HookItem", "Item"]
