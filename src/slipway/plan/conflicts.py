"""The plan's three kinds of conflict, each with what a person can do about it.

``resource_exists``: the object exists and slipway may not take it (someone else owns it), a
blocking conflict. ``validation``: the API server refuses the object (schema, immutable field,
missing namespace), blocking. ``out_of_sync``: fields slipway applied were changed outside of
GitOps (drift); not blocking, Git wins on sync.
"""

from __future__ import annotations

from ..items import HookItem, Item
from ..kube import Obj
from ..results import Conflict
from . import mask, ownership
from .normalize import display


def states(it: Item) -> tuple[Obj | None, Obj | None]:
    current = display(it.live) if it.live is not None else None
    desired = display(it.returned if it.returned is not None else it.desired or {})
    return mask.mask_pair(current, desired)


def resource_exists(it: Item, workflow_id: str, instance: str) -> Conflict:
    assert it.live is not None
    current, desired = states(it)
    who = ownership.owner(it.live, workflow_id, instance)
    whom = ownership.describe_owner(it.live, workflow_id)
    where = f" -n {it.ref.namespace}" if it.ref.namespace else ""
    labels = " ".join(f"{k}={v}" for k, v in ownership.marks(workflow_id, instance).items())
    if who == "other-store":
        suggestions = [
            f"Two slipway state stores both have a workflow {workflow_id} aimed at this object: keep it in one, "
            "or give the workflow another id in the other",
        ]
    else:
        suggestions = [
            f"To let workflow {workflow_id} adopt it, label it: "
            f"kubectl label {it.ref.kind.lower()} {it.ref.name}{where} {labels} --overwrite",
        ]
    suggestions += [
        f"Or remove it from {it.source} if something else should keep managing it",
        "Or delete the existing object so the sync creates it",
    ]
    return Conflict(
        resource=it.ref.resource,
        namespace=it.namespace,
        type="resource_exists",
        description=f"{it.ref} already exists and is {whom} (declared in {it.source})",
        suggestions=suggestions,
        current_state=current,
        desired_state=desired,
    )


def validation(it: Item) -> Conflict:
    current, desired = states(it)
    message = it.error or ""
    suggestions = [f"Fix the manifest in {it.source}"]
    if message.startswith("immutable: "):
        message = message.removeprefix("immutable: ")
        suggestions.append("Set sync_policy.recreate = true to let slipway delete and create it again")
    if "namespaces" in message and "not found" in message:
        suggestions.append(
            f"Create namespace {it.ref.namespace}, declare it in the same path, or set "
            "sync_policy.create_namespace = true to let slipway create it"
        )
    if "forbidden" in message.lower():
        suggestions.append("Grant the identity in the kubeconfig the permission the server names")
    return Conflict(
        resource=it.ref.resource,
        namespace=it.namespace,
        type="validation",
        description=f"{it.source}: {message}",
        suggestions=suggestions,
        current_state=current,
        desired_state=desired,
    )


def hook_validation(h: HookItem) -> Conflict:
    return Conflict(
        resource=h.resource,
        namespace=h.ref.namespace or None,
        type="validation",
        description=f"{h.source}: hook: {h.error}",
        suggestions=[f"Fix the hook in {h.source}"],
        desired_state=mask.mask_one(display(h.desired)),
    )


def out_of_sync(it: Item) -> Conflict:
    current, desired = states(it)
    fields = ", ".join(it.conflict_fields) if it.conflict_fields else "fields slipway applied"
    return Conflict(
        resource=it.ref.resource,
        namespace=it.namespace,
        type="out_of_sync",
        description=f"{it.ref} was modified outside of GitOps since its last sync ({fields})",
        suggestions=[
            "Review manual changes before proceeding: a sync restores what Git declares",
            "Consider updating the Git repository if the manual change should stay",
        ],
        current_state=current,
        desired_state=desired,
    )
