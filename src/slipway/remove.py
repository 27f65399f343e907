"""Removing a workflow with ``--cascade``: delete what it owns, within the prune rules, and keep the record.

    plan (everything in the inventory, as if Git declared nothing) -> backup -> prune -> record

What may be deleted is exactly what a prune may delete (:mod:`.plan.prune`): objects the
inventory says the workflow applied, that still carry its marks, with no controller owner, not
marked prune-disabled, and no Namespace or CRD that holds anything else. The rest stays, and
the record says why. The sync record (trigger ``remove``) stays in the history after the
workflow is gone, with the backups a person would need to recreate what was deleted.

A resource hook's objects are never in the inventory (a hook is not desired state), yet a hook
Job and its Pods stay after it ran: :func:`hook_runs` finds them, in the kinds and namespaces the
workflow's syncs ran hooks in, and they are deleted with the rest — only those whose marks prove
they are runs of this workflow's hooks made by this state store (the hook label must be the
identity of the hook the object's own name or ``generateName`` makes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import settings, waves
from .durations import rfc3339
from .errors import KubeForbidden, KubeInvalid, KubeNotFound, SlipwayError
from .kube import Obj, ObjectRef, ResourceInfo
from .kube.objects import get_labels
from .model import RetryPolicy
from .plan.model import Plan
from .plan.ownership import HOOK_LABEL
from .results import SyncResult
from .retry import with_retry
from .run import Run, refusal

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger("slipway.sync")


class RemoveRun(Run):
    def execute(self, plan: Plan, expected_plan: str | None) -> SyncResult:
        store, result = self.store, self.result
        store.start_sync(result)
        failure: str | None = None
        with self.failures("removal") as failed:
            if plan.blocking:
                raise SlipwayError(refusal(plan))
            if expected_plan is not None and plan.fingerprint() != expected_plan:
                raise SlipwayError("refused: what the workflow owns changed since it was shown; review it again")
            self.stage("backup")
            self.backup(plan)
            self.stage("prune")
            self.prune_only(plan.deletions)
        failure = failed.message
        result.metrics = self.metrics(plan)
        result.end_time = rfc3339()
        result.changes = [c.to_record() for c in plan.changes]
        kept = f"; kept {len(plan.orphans)} (see the warnings of its plan)" if plan.orphans else ""
        if failure is None:
            result.status = "succeeded"
            result.message = f"Workflow removed: deleted {len(self.outcome.deleted)} object(s){kept}"
        else:
            result.status = "failed"
            result.message = f"Removal failed (the workflow stays): {failure}"
        store.finish_sync(
            result,
            workflow_status="removed" if failure is None else "failed",
            status_message=result.message,
            inventory=self.inventory_after(plan),
        )
        log.info("%s", result.message)
        return result


def hook_runs(
    kube: Kube,
    workflow_id: str,
    instance: str,
    history: Iterable[SyncResult],
    retry: RetryPolicy,
    cancel: threading.Event | None = None,
) -> dict[ObjectRef, str]:
    """The live runs of the workflow's resource hooks, as inventory entries (ref -> apiVersion)."""
    places: set[tuple[str, str]] = set()
    for r in history:
        for h in r.hooks:
            if h.get("kind") == "resource" and "/" in str(h.get("resource")):
                places.add((str(h["resource"]).partition("/")[0], str(h.get("namespace") or "")))
    infos: dict[str, list[ResourceInfo]] = {}
    for info in kube.discovery.all():
        infos.setdefault(info.kind, []).append(info)
    sel = f"{settings.LABEL_WORKFLOW}={workflow_id},{HOOK_LABEL}"
    out: dict[ObjectRef, str] = {}
    for kind, namespace in sorted(places):
        for info in infos.get(kind, []):
            ns = namespace if info.namespaced else ""
            try:
                found = with_retry(lambda info=info, ns=ns: kube.list(info, ns or None, label_selector=sel),  # type: ignore[misc]
                                   retry, what=f"list {info.kind}", cancel=cancel)  # fmt: skip
            except (KubeForbidden, KubeInvalid, KubeNotFound):
                continue  # not listable here: nothing slipway could prove is its own
            for obj in found:
                if _proven_run(obj, info, workflow_id, instance):
                    md = obj.get("metadata") or {}
                    out[ObjectRef(info.group, info.kind, md.get("namespace") or "", md.get("name") or "")] = (
                        info.api_version
                    )
    return out


def _proven_run(obj: Obj, info: ResourceInfo, workflow_id: str, instance: str) -> bool:
    labels = get_labels(obj)
    if (labels.get(settings.LABEL_MANAGED_BY), labels.get(settings.LABEL_WORKFLOW),
            labels.get(settings.LABEL_INSTANCE)) != ("slipway", workflow_id, instance):  # fmt: skip
        return False
    md = obj.get("metadata") or {}
    where = {"namespace": md.get("namespace") or ""}
    named = [{**where, "name": md.get("name")}]
    if md.get("generateName"):
        named.append({**where, "generateName": md["generateName"]})
    kind = {"apiVersion": info.api_version, "kind": info.kind}
    return any(labels.get(HOOK_LABEL) == waves.identity(workflow_id, {**kind, "metadata": m}) for m in named)
