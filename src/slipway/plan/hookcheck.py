"""What a hook may touch, decided when the plan is made (and checked again when the hook runs).

A named hook replaces the object that has its name (BeforeHookCreation deletes it, any other policy
applies over it). It may only do so when slipway's marks prove that object is an earlier run of
that very hook of that workflow, made by this state store (:func:`.ownership.hook_run_of`);
anything else — made by hand, by another workflow, by another store, this workflow's ordinary
object — is a ``resource_exists`` conflict, so the plan is refused and nothing is applied.

A Namespace or CustomResourceDefinition as a hook is refused unless the object is annotated
``slipway.dev/allow-cascading-hook: "true"``: deleting its earlier run deletes everything in it
(every object of the namespace, every custom resource of the kind in the cluster).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .. import settings
from ..errors import KubeForbidden, KubeInvalid
from ..items import HookItem
from ..kube import Obj
from ..kube.objects import get_annotations
from ..model import RetryPolicy
from ..results import Conflict
from ..retry import with_retry
from . import mask, ownership
from .normalize import display

if TYPE_CHECKING:
    from ..kube import Kube

ALLOW_CASCADE = settings.ANNOTATION_PREFIX + "allow-cascading-hook"
CASCADING = {
    ("", "Namespace"): "every object in the namespace",
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "every custom resource of its kind in the cluster",
}


def cascade_refused(h: HookItem) -> str | None:
    """Why ``h`` may not be a hook (its deletion cascades and it does not opt in), or None."""
    what = CASCADING.get(h.ref.group_kind)
    if what is None or str(get_annotations(h.desired).get(ALLOW_CASCADE, "")).strip().lower() == "true":
        return None
    return (f"a {h.ref.kind} may not be a hook: deleting an earlier run of it (its delete policy) deletes {what}; "
            f'declare it as an ordinary object, or annotate it {ALLOW_CASCADE}: "true" to accept that')  # fmt: skip


def cascade_conflict(h: HookItem, why: str) -> Conflict:
    return Conflict(
        resource=h.resource,
        namespace=h.ref.namespace or None,
        type="validation",
        description=f"{h.source}: hook: {why}",
        suggestions=[
            f"Remove the hook annotation in {h.source}: as an ordinary object it is applied, never deleted and "
            "re-created",
            f'Or annotate it {ALLOW_CASCADE}: "true" if every run may delete what it holds',
        ],
        desired_state=mask.mask_one(display(h.desired)),
    )


def live_of(kube: Kube, h: HookItem, retry: RetryPolicy, cancel: threading.Event | None) -> Obj | None:
    """The live object with the hook's name (None for a ``generateName`` hook, or one not there yet)."""
    if h.generate or h.pending or h.info is None:
        return None
    info = h.info
    try:
        return with_retry(lambda: kube.get(info, h.ref.namespace, h.ref.name), retry,
                          what=f"get {h.ref}", cancel=cancel)  # fmt: skip
    except (KubeForbidden, KubeInvalid):
        return None  # the dry-run create says what is wrong with it


def existing_conflict(h: HookItem, live: Obj) -> Conflict | None:
    """A ``resource_exists`` conflict when ``live`` is not an earlier run of the hook ``h``."""
    whose = ownership.hook_run_of(live, h.desired)
    if whose is None:
        return None
    current, desired = mask.mask_pair(display(live), display(h.desired))
    return Conflict(
        resource=h.resource,
        namespace=h.ref.namespace or None,
        type="resource_exists",
        description=f"{h.ref} already exists and is {whose}; the hook declared in {h.source} may only replace an "
        "earlier run of itself",
        suggestions=[
            f"Give the hook another name, or a metadata.generateName, in {h.source}",
            f"Or remove the hook from {h.source} if the existing object should stay as it is",
            "Or delete the existing object if it is a leftover the hook may replace",
        ],
        current_state=current,
        desired_state=desired,
    )
