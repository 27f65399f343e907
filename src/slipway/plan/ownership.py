"""Ownership: the marks slipway puts on what it applies, and how it proves later that an object is its own.

Every applied object carries the labels ``app.kubernetes.io/managed-by: slipway``,
``slipway.dev/workflow: <id>`` and ``slipway.dev/instance: <state store id>``, and the annotation
``slipway.dev/applied-hash`` (a hash of what Git declares, so an object Git did not change and
whose declared fields all hold live needs no request to be known unchanged). A label proves
nothing by itself: slipway updates an object only when its marks name this workflow *and* this
state store, and prunes only what its inventory says it applied and that still carries its marks,
has no controller owner, and is not marked prune-disabled (slipway's, Argo CD's or Flux's way).
A hook's object also carries ``slipway.dev/hook: <identity>`` (which hook of which workflow it is a
run of): a hook replaces or deletes only an object whose four marks all equal its own.
"""

from __future__ import annotations

import hashlib
import json

from .. import settings
from ..kube import Obj
from ..kube.objects import get_annotations, get_labels, meta

HASH_ANNOTATION = settings.HASH_ANNOTATION
# On hooks: which hook of which workflow an object is a run of (a generateName hook makes many).
HOOK_LABEL = settings.ANNOTATION_PREFIX + "hook"

# Annotations that keep an object from being pruned, as each tool's users write them.
PRUNE_DISABLED = {
    "slipway.dev/prune": ("disabled", "false"),
    "kustomize.toolkit.fluxcd.io/prune": ("disabled",),
}
ARGO_SYNC_OPTIONS = "argocd.argoproj.io/sync-options"


def content_hash(obj: Obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]


def marks(workflow_id: str, instance: str) -> dict[str, str]:
    return {
        settings.LABEL_MANAGED_BY: "slipway",
        settings.LABEL_WORKFLOW: workflow_id,
        settings.LABEL_INSTANCE: instance,
    }


def selector(workflow_id: str) -> str:
    """The label selector of everything a workflow may have applied (its instance is checked per object)."""
    return f"{settings.LABEL_WORKFLOW}={workflow_id}"


def stamp(obj: Obj, workflow_id: str, instance: str) -> Obj:
    """The object as slipway applies it: ownership labels and the hash of what Git declares."""
    digest = content_hash(obj)
    out = json.loads(json.dumps(obj))
    m = meta(out)
    m["labels"] = {**(m.get("labels") or {}), **marks(workflow_id, instance)}
    m["annotations"] = {**(m.get("annotations") or {}), HASH_ANNOTATION: digest}
    return out


def owner(live: Obj, workflow_id: str, instance: str) -> str:
    """Whose the live object is, by its marks: ``ours``, ``legacy`` (ours, marked before slipway
    marked its instance), ``other-store``, ``other-workflow`` or ``unmarked``."""
    labels = get_labels(live)
    wf = labels.get(settings.LABEL_WORKFLOW)
    if wf is None:
        return "unmarked"
    if wf != workflow_id:
        return "other-workflow"
    theirs = labels.get(settings.LABEL_INSTANCE)
    if theirs is None:
        return "legacy"
    return "ours" if theirs == instance else "other-store"


def describe_owner(live: Obj, workflow_id: str) -> str:
    labels = get_labels(live)
    wf = labels.get(settings.LABEL_WORKFLOW)
    if wf is None:
        return "not managed by slipway"
    if wf != workflow_id:
        return f"owned by workflow {wf}"
    return f"owned by workflow {wf} of another slipway state store (instance {labels.get(settings.LABEL_INSTANCE)})"


def hook_run_of(live: Obj, desired: Obj) -> str | None:
    """None when the live object's marks prove it is an earlier run of the hook ``desired`` stamps (same
    hook, workflow and state store); otherwise whose it is, for a conflict or an error."""
    theirs, mine = get_labels(live), get_labels(desired)
    keys = (settings.LABEL_MANAGED_BY, settings.LABEL_WORKFLOW, settings.LABEL_INSTANCE, HOOK_LABEL)
    if all(theirs.get(k) == mine.get(k) for k in keys):
        return None
    wf, store = theirs.get(settings.LABEL_WORKFLOW), theirs.get(settings.LABEL_INSTANCE)
    if theirs.get(settings.LABEL_MANAGED_BY) != "slipway" or wf is None:
        return "not managed by slipway"
    if wf != mine.get(settings.LABEL_WORKFLOW):
        return f"owned by workflow {wf}"
    if store != mine.get(settings.LABEL_INSTANCE):
        return f"owned by workflow {wf} of another slipway state store (instance {store})"
    return f"owned by workflow {wf}, but not a run of this hook"


def prune_disabled(live: Obj) -> str | None:
    """Why the object must not be pruned (the annotation that says so), or None."""
    annotations = get_annotations(live)
    for key, values in PRUNE_DISABLED.items():
        if str(annotations.get(key, "")).strip().lower() in values:
            return f"{key}: {annotations[key]}"
    options = [o.strip().lower() for o in str(annotations.get(ARGO_SYNC_OPTIONS, "")).split(",")]
    if "prune=false" in options:
        return f"{ARGO_SYNC_OPTIONS}: Prune=false"
    return None


def controller_owner(live: Obj) -> str | None:
    """``Kind/name`` of the controller that owns the object (a ReplicaSet's Deployment), or None."""
    for ref in (live.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None
