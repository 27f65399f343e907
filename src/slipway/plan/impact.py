"""How risky a change is: one rule table, read top to bottom, first match wins.

Each rule names the operations and kinds it covers, an optional condition on what changed, the
level, and the reason the diff prints. ``docs/impact.md`` shows this same table in the same
words (a unit test keeps the two identical).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

WORKLOADS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob", "Pod"}
)
STORAGE_AND_SCOPE = frozenset({"Namespace", "CustomResourceDefinition", "PersistentVolume", "PersistentVolumeClaim"})
RBAC = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})
WEBHOOKS = frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"})
TRAFFIC_AND_POLICY = frozenset(
    {
        "Ingress", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ResourceQuota",
        "LimitRange", "PriorityClass", "StorageClass", "CustomResourceDefinition",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Subject:
    type: str  # create | update | delete
    kind: str
    current: dict[str, Any] | None
    desired: dict[str, Any] | None
    recreate: bool = False


def _metadata_only(s: Subject) -> bool:
    if s.current is None or s.desired is None:
        return False
    strip = lambda o: {k: v for k, v in o.items() if k != "metadata"}  # noqa: E731
    return strip(s.current) == strip(s.desired)


def _scales_to_zero(s: Subject) -> bool:
    def replicas(o: dict[str, Any] | None) -> Any:
        return ((o or {}).get("spec") or {}).get("replicas")

    return replicas(s.desired) == 0 and replicas(s.current) not in (0,)


@dataclass(frozen=True)
class Rule:
    operations: frozenset[str]
    kinds: frozenset[str] | None  # None: any kind
    condition: str  # a name from CONDITIONS, or "" for none
    level: str
    reason: str

    def matches(self, s: Subject) -> bool:
        if s.type not in self.operations:
            return False
        if self.kinds is not None and s.kind not in self.kinds:
            return False
        return not self.condition or CONDITIONS[self.condition](s)


CONDITIONS: dict[str, Callable[[Subject], bool]] = {
    "forces recreation": lambda s: s.recreate,
    "scales to zero replicas": _scales_to_zero,
    "only metadata changes": _metadata_only,
}

C, U, D = frozenset({"create"}), frozenset({"update"}), frozenset({"delete"})
CU = C | U
ANY_OP = C | U | D

RULES: list[Rule] = [
    Rule(D, STORAGE_AND_SCOPE, "", "critical", "deleting it deletes everything it holds"),
    Rule(U, None, "forces recreation", "high", "an immutable field changes: it is deleted and created again"),
    Rule(D, WORKLOADS | {"Service"}, "", "high", "deleting it stops what runs or what routes traffic"),
    Rule(U, WORKLOADS, "scales to zero replicas", "high", "scaling to zero stops the workload"),
    Rule(U, None, "only metadata changes", "low", "only labels or annotations change"),
    Rule(ANY_OP, RBAC, "", "high", "it changes who may do what in the cluster"),
    Rule(ANY_OP, WEBHOOKS, "", "high", "it intercepts requests to the API server"),
    Rule(CU, WORKLOADS, "", "medium", "it starts or rolls out a workload"),
    Rule(CU, TRAFFIC_AND_POLICY, "", "medium", "it changes traffic, scheduling or API policy"),
    Rule(D, None, "", "medium", "deleting configuration others may depend on"),
    Rule(CU, None, "", "low", "a configuration change"),
]


def assess(s: Subject) -> tuple[str, str]:
    """(level, reason) of the first rule that matches."""
    for rule in RULES:
        if rule.matches(s):
            return rule.level, rule.reason
    return "low", "a configuration change"


def table_markdown() -> str:
    """The rule table as docs/impact.md shows it."""
    rows = ["| # | operation | kinds | when | impact | why |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(RULES, start=1):
        ops = ", ".join(o for o in ("create", "update", "delete") if o in r.operations)
        kinds = ", ".join(sorted(r.kinds)) if r.kinds is not None else "any"
        rows.append(f"| {i} | {ops} | {kinds} | {r.condition or 'always'} | {r.level} | {r.reason} |")
    return "\n".join(rows)
