"""Names, labels and API resources of slipway's own objects in ``SLIPWAY_NAMESPACE``.

A repository or workflow id may hold capitals and ``_`` (``ID_RE``), an object name may not; an
id that is already a DNS label is its own name, any other gets a lowercase name with a hash of
the id, so the mapping is fixed and two ids never meet. The id itself is always a label
(``slipway.dev/id``: the id grammar is exactly a label value's).
"""

from __future__ import annotations

import hashlib
import os
import re

from ...kube import ResourceInfo

GROUP = "slipway.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_NAMESPACE = "slipway-system"

WORKFLOWS = ResourceInfo(GROUP, VERSION, "Workflow", "workflows", True, frozenset())
REPOSITORIES = ResourceInfo(GROUP, VERSION, "Repository", "repositories", True, frozenset())
SECRETS = ResourceInfo("", "v1", "Secret", "secrets", True, frozenset())
CONFIGMAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", True, frozenset())
NAMESPACES = ResourceInfo("", "v1", "Namespace", "namespaces", False, frozenset())
CRDS = ResourceInfo(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, frozenset()
)

MANAGER = "slipway"  # the field manager of everything the store writes
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_ID = "slipway.dev/id"
LABEL_WORKFLOW = "slipway.dev/workflow"
LABEL_WORKFLOW_UID = "slipway.dev/workflow-uid"
# sync | objects | inventory | executions | credentials | notify | decryption | token
LABEL_RECORD = "slipway.dev/record"
LABEL_SYNC = "slipway.dev/sync"
LABEL_SYNC_STATUS = "slipway.dev/sync-status"
LABEL_KIND = "slipway.dev/kind"
LABEL_REPOSITORY = "slipway.dev/repository"
ANNOTATION_SEQ = "slipway.dev/seq"
ANNOTATION_OWNER = "slipway.dev/owner"
ANNOTATION_CHUNKS = "slipway.dev/chunks"
ANNOTATION_CREDENTIALS = "slipway.dev/credentials-version"
ANNOTATION_NOTIFY = "slipway.dev/notify-version"
ANNOTATION_DECRYPTION = "slipway.dev/decryption-version"
LABEL_TOKEN_ID = "slipway.dev/token-id"
ANNOTATION_LAST_USED = "slipway.dev/last-used-at"
REMOVED = "removed"  # the workflow-uid label of history a migrated, removed workflow left

INSTANCE_CONFIGMAP = "slipway-instance"
TOKEN_NAMES_CONFIGMAP = "slipway-token-names"  # token name -> id: a name is taken once
KEY_SECRET = "slipway-encryption-key"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def namespace() -> str:
    """``SLIPWAY_NAMESPACE``: where slipway keeps its own objects."""
    return (os.environ.get("SLIPWAY_NAMESPACE") or DEFAULT_NAMESPACE).strip()


def kname(value: str, limit: int = 63) -> str:
    """An object name (a DNS label) for ``value``: the value itself when it is one, else a fixed,
    lowercase name that keeps it readable and carries a hash of it."""
    if _DNS_LABEL.match(value) and len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    base = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")[: limit - 11].strip("-")
    return f"{base}-{digest}" if base else f"x-{digest}"


def managed(**labels: str) -> dict[str, str]:
    return {LABEL_MANAGED_BY: "slipway", **labels}


def selector(**labels: str) -> str:
    return ",".join(f"{k}={v}" for k, v in {LABEL_MANAGED_BY: "slipway", **labels}.items())


def sync_name(sync_id: str) -> str:
    return "slipway-sync-" + kname(sync_id, 200)


def credentials_name(repo_id: str) -> str:
    return "slipway-creds-" + kname(repo_id)


def notify_name(workflow_id: str) -> str:
    return "slipway-notify-" + kname(workflow_id)


def decryption_name(workflow_id: str) -> str:
    return "slipway-decryption-" + kname(workflow_id)


def token_name(token_id: str) -> str:
    return "slipway-token-" + kname(token_id)


def inventory_name(workflow_uid: str) -> str:
    return f"slipway-inv-{workflow_uid}"


def executions_name(task_name: str) -> str:
    return "slipway-exec-" + hashlib.sha256(task_name.encode()).hexdigest()[:20]
