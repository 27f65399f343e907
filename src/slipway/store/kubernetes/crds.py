"""The CustomResourceDefinitions of ``slipway.dev/v1alpha1``, built from :mod:`.mapping`'s table.

Structural schemas (every field typed, nothing unknown kept but Helm values and Jsonnet
arguments), a status subresource (slipway writes run state there; ``kubectl apply`` of a spec
never touches it), printer columns for ``kubectl get workflows`` and CEL rules for what a type
cannot say (a duration's minimum, a Helm chart repository's restrictions). ``CRD_REVISION``
is stamped on each CRD as an annotation: ``slipway install`` refuses to replace a newer one.
Bump it whenever a schema here changes.
"""

from __future__ import annotations

from typing import Any

from . import mapping
from .mapping import Field
from .names import API_VERSION, GROUP, VERSION

# 2: Workflow spec.notify; 3: spec.syncPolicy.ignoreDifferences; 4: status.assessment;
# 5: spec.chart, chartVersion; 6: spec.decryption, postBuild; 7: spec.labels, notify events "refused"
CRD_REVISION = 7
REVISION_ANNOTATION = "slipway.dev/crd-revision"


def _schema(f: Field) -> dict[str, Any]:
    out: dict[str, Any]
    if f.kind in ("string", "duration"):
        out = {"type": "string"}
        if f.kind == "duration":
            out["pattern"] = mapping.DURATION_PATTERN
        if f.enum:
            out["enum"] = list(f.enum)
    elif f.kind == "boolean":
        out = {"type": "boolean"}
    elif f.kind == "integer":
        out = {"type": "integer"}
        if f.minimum is not None:
            out["minimum"] = f.minimum
    elif f.kind == "strings":
        out = {"type": "array", "items": {"type": "string", **({"enum": list(f.enum)} if f.enum else {})}}
    elif f.kind == "labels":
        out = {"type": "object", "additionalProperties": {"type": "string"}}
    elif f.kind == "data":
        out = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    elif f.kind == "objects":
        out = {"type": "array", "items": {**_object(f.children, f.rules), "required": ["kind"]}}
    elif f.kind == "secret":
        out = {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}, "key": {"type": "string", "minLength": 1}},
        }
    else:
        out = _object(f.children, f.rules)
    if f.doc:
        out["description"] = f.doc
    return out


def _object(fields: tuple[Field, ...], rules: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": {f.cr: _schema(f) for f in fields}}
    if rules:
        out["x-kubernetes-validations"] = [{"rule": r, "message": m} for r, m in rules]
    return out


_CONDITIONS = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer"},
        },
    },
}


# The sync status and health as last computed (slipway.axes), in the words of every other front.
_ASSESSMENT = {
    "type": "object",
    "description": "Sync status against Git and health of the live objects, as last computed, and when.",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {
        "sync_status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"status": {"type": "string"}}},
        "health": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                   "properties": {"status": {"type": "string"}, "message": {"type": "string"}}},
        "assessed_at": {"type": "string"},
    },
}  # fmt: skip


def _workflow_status() -> dict[str, Any]:
    s = {"type": "string"}
    metrics = {mapping.camel(k): {"type": "integer"} for k in (
        "resources_processed", "resources_applied", "resources_deleted", "resources_skipped", "conflicts_resolved")}  # fmt: skip
    metrics["duration"] = s
    return {
        "type": "object",
        "description": "Run state, written by slipway only.",
        "properties": {
            "status": {"type": "string", "description": "active, syncing, synced, failed or degraded."},
            "message": s,
            "appliedRevision": {"type": "string", "description": "The revision live in the cluster."},
            "holdRevision": {"type": "string", "description": "The revision a rollback holds auto-sync away from."},
            "lastSyncId": s,
            "lastSyncResult": {
                "type": "object",
                "properties": {
                    "id": s,
                    "status": s,
                    "startTime": s,
                    "commitHash": s,
                    "message": s,
                    "metrics": {"type": "object", "properties": metrics},
                },
            },
            "claim": {
                "type": "object",
                "description": "The one sync or rollback running now, and who runs it.",
                "properties": {"syncId": s, "owner": s, "identity": s, "lease": s, "since": s},
            },
            "syncSeq": {"type": "integer", "description": "Syncs started so far (orders the history)."},
            "inventory": {"type": "object", "properties": {"count": {"type": "integer"}}},
            "assessment": _ASSESSMENT,
            "observedGeneration": {"type": "integer"},
            "conditions": _CONDITIONS,
        },
    }


def _crd(kind: str, plural: str, spec: dict[str, Any], status: dict[str, Any], columns: list[dict[str, Any]],
         short: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "slipway", "app.kubernetes.io/component": "crd"},
            "annotations": {REVISION_ANNOTATION: str(CRD_REVISION)},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["slipway"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def workflow_crd() -> dict[str, Any]:
    spec = _object(mapping.WORKFLOW)
    spec["required"] = ["repository"]
    spec["properties"]["repository"]["minLength"] = 1
    spec["description"] = "What to deploy from where; the object's name is the workflow's id."
    columns: list[dict[str, Any]] = [
        {"name": "Status", "type": "string", "jsonPath": ".status.status"},
        {"name": "Sync", "type": "string", "jsonPath": ".status.assessment.sync_status.status"},
        {"name": "Health", "type": "string", "jsonPath": ".status.assessment.health.status"},
        {"name": "Revision", "type": "string", "jsonPath": ".status.appliedRevision"},
        {"name": "Repository", "type": "string", "jsonPath": ".spec.repository", "priority": 1},
        {"name": "Path", "type": "string", "jsonPath": ".spec.targetPath", "priority": 1},
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd("Workflow", "workflows", spec, _workflow_status(), columns, ["wf"])


def repository_crd() -> dict[str, Any]:
    spec = _object(mapping.REPOSITORY, mapping.REPOSITORY_RULES)
    spec["required"] = ["url"]
    spec["properties"]["url"]["minLength"] = 1
    spec["properties"]["credentials"] = {
        "type": "object",
        "description": "A Secret in this namespace holding token, username+password, or sshKey (+ knownHosts).",
        "required": ["secretRef"],
        "properties": {
            "type": {
                "type": "string",
                "enum": ["token", "userpass", "ssh"],
                "description": "What the Secret holds (default: what its keys say).",
            },
            "secretRef": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
            },
        },
    }
    spec["description"] = "A Git repository workflows read, or a Helm chart repository; the name is its id."
    status = {
        "type": "object",
        "properties": {"observedGeneration": {"type": "integer"}, "conditions": _CONDITIONS},
    }
    columns: list[dict[str, Any]] = [
        {"name": "URL", "type": "string", "jsonPath": ".spec.url"},
        {"name": "Branch", "type": "string", "jsonPath": ".spec.branch"},
        {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd("Repository", "repositories", spec, status, columns, ["repo"])


def crds() -> list[dict[str, Any]]:
    return [repository_crd(), workflow_crd()]


__all__ = ["API_VERSION", "CRD_REVISION", "REVISION_ANNOTATION", "crds", "repository_crd", "workflow_crd"]
