"""The order objects are applied in within a sync wave: one table, by kind.

Namespaces and CustomResourceDefinitions come first, in a tier of their own that is waited for
(CRDs until Established) before anything else; then the rest by the rank below; kinds the table
does not know (custom resources) last. Pruning walks the same order backwards. Sync waves
(:mod:`slipway.waves`, from annotations) come before all of this: wave, then tier, then rank.
"""

from __future__ import annotations

FIRST_TIER = ("Namespace", "CustomResourceDefinition")

ORDER = [
    "Namespace",
    "CustomResourceDefinition",
    "ResourceQuota",
    "LimitRange",
    "PriorityClass",
    "PodSecurityPolicy",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "IngressClass",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
]
_RANK = {kind: i for i, kind in enumerate(ORDER)}
UNKNOWN_RANK = len(ORDER)


def rank(kind: str) -> int:
    return _RANK.get(kind, UNKNOWN_RANK)


def tier(kind: str) -> int:
    """0: namespaces and CRDs; 1: kinds of the table; 2: everything else (custom resources)."""
    if kind in FIRST_TIER:
        return 0
    return 1 if kind in _RANK else 2
