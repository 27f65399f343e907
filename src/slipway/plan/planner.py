"""Plan: what a sync would change, computed against the live cluster.

For each rendered object: resolve its kind with discovery (or with a CRD declared in the same
render), default its namespace, stamp ownership, then compare with the live object read by one
LIST per kind and namespace. An object whose ownership hash matches and whose declared fields all
hold live is unchanged without another request; anything else gets a server-side apply dry-run
(bounded concurrency), first without force so that fields someone else changed show up as an
``out_of_sync`` conflict, and the dry-run result is compared with the live object after
normalization. Owned objects Git no longer declares are deletions when auto_prune is on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from ..apply import order
from ..errors import KubeError, KubeForbidden, KubeInvalid, KubeNotFound, ManifestError
from ..kube import Kube, KubeFieldConflict, Obj, ObjectRef, ResourceInfo, UnknownKind
from ..kube.objects import get_annotations, get_labels, meta, split_api_version
from ..model import Change, Conflict, Workflow
from ..render import Manifest
from ..retry import with_retry
from . import impact, mask, textdiff
from .normalize import covers, for_display, normalize, secret_covers

HASH_ANNOTATION = settings.ANNOTATION_PREFIX + "applied-hash"


@dataclass
class Item:
    """One object of the plan, desired or to be deleted, with what slipway will do to it."""

    ref: ObjectRef
    api_version: str
    info: ResourceInfo | None
    desired: Obj | None  # stamped manifest; None for deletions
    source: str
    manifest: Obj | None = None  # what Git declares (namespace defaulted, not stamped): kept with the sync
    live: Obj | None = None
    dry: Obj | None = None
    action: str = "unchanged"  # create | update | delete | unchanged | blocked
    pending: bool = False  # its namespace or CRD does not exist yet: no dry-run possible
    drifted: bool = False
    recreate: bool = False
    conflict_fields: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def namespace(self) -> str | None:
        return self.ref.namespace or None

    def sort_key(self) -> tuple[int, int, str, str]:
        return (order.wave(self.ref.kind), order.rank(self.ref.kind), self.ref.namespace, self.ref.name)


@dataclass
class Plan:
    workflow_id: str
    revision: str | None
    generated_at: str
    items: list[Item] = field(default_factory=list)
    deletions: list[Item] = field(default_factory=list)
    orphans: list[Item] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
        """Identifies what this plan would do, so a sync can refuse a plan other than the one approved."""
        parts = [self.revision or ""]
        parts += [f"{c.type}|{c.namespace}|{c.resource}|{c.diff}" for c in self.changes]
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
        }


def content_hash(obj: Obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:20]


def stamp(obj: Obj, workflow_id: str) -> Obj:
    """The object as slipway applies it: ownership labels and the hash of what Git declares."""
    digest = content_hash(obj)
    out = json.loads(json.dumps(obj))
    m = meta(out)
    m["labels"] = {
        **(m.get("labels") or {}),
        settings.LABEL_MANAGED_BY: "slipway",
        settings.LABEL_WORKFLOW: workflow_id,
    }
    m["annotations"] = {**(m.get("annotations") or {}), HASH_ANNOTATION: digest}
    return out


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _crd_infos(manifests: list[Manifest]) -> dict[tuple[str, str, str], ResourceInfo]:
    """Kinds that CRDs in this very render will define, so their objects can be planned too."""
    out = {}
    for m in manifests:
        obj = m.obj
        if obj.get("kind") != "CustomResourceDefinition" or not str(obj.get("apiVersion", "")).startswith(
            "apiextensions.k8s.io/"
        ):
            continue
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        if not (spec.get("group") and names.get("kind") and names.get("plural")):
            continue
        for v in spec.get("versions") or []:
            if isinstance(v, dict) and v.get("name"):
                info = ResourceInfo(
                    spec["group"], v["name"], names["kind"], names["plural"], spec.get("scope") == "Namespaced"
                )
                out[(info.group, info.version, info.kind)] = info
    return out


class Planner:
    def __init__(
        self,
        kube: Kube,
        workflow: Workflow,
        *,
        concurrency: int = 16,
        cancel: threading.Event | None = None,
    ) -> None:
        self.kube = kube
        self.wf = workflow
        self.concurrency = concurrency
        self.cancel = cancel

    # -- resolve -----------------------------------------------------------------------------------

    def resolve(self, manifests: list[Manifest], warnings: list[str], conflicts: list[Conflict]) -> list[Item]:
        """Kinds, namespaces, stamps and the duplicate check; unknown kinds become conflicts."""
        pending_kinds = _crd_infos(manifests)
        items: list[Item] = []
        seen: dict[ObjectRef, str] = {}
        for m in manifests:
            obj = json.loads(json.dumps(m.obj))  # our own copy, plain JSON types only
            api_version, kind = obj["apiVersion"], obj["kind"]
            info = self.kube.discovery.find(api_version, kind)
            pending = False
            if info is None:
                group, version = split_api_version(api_version)
                info = pending_kinds.get((group, version, kind))
                pending = info is not None
            md = meta(obj)
            if info is None:
                ref = ObjectRef.of(obj)
                conflicts.append(
                    Conflict(
                        resource=ref.resource,
                        namespace=md.get("namespace") or None,
                        type="validation",
                        description=f"{m.source}: the cluster has no kind {kind} in apiVersion {api_version}",
                        suggestions=[
                            f"Check apiVersion and kind in {m.source}",
                            "Declare the CustomResourceDefinition in the same path, or install it first",
                        ],
                        desired_state=mask.mask_one(obj),
                    )
                )
                continue
            if info.namespaced:
                md["namespace"] = md.get("namespace") or self.wf.destination.namespace
            elif md.get("namespace"):
                warnings.append(f"{m.source}: {kind}/{md['name']} is cluster-scoped; its namespace is ignored")
                del md["namespace"]
            ref = ObjectRef.of(obj)
            if ref in seen:
                raise ManifestError(f"{m.source}: {ref} is declared twice (first in {seen[ref]})")
            seen[ref] = m.source
            items.append(Item(ref, api_version, info, stamp(obj, self.wf.id), m.source, obj, pending=pending))
        return items

    # -- read live state ----------------------------------------------------------------------------

    def _list(self, info: ResourceInfo, namespace: str, selector: str | None = None) -> list[Obj]:
        return with_retry(
            lambda: self.kube.list(info, namespace or None, label_selector=selector),
            self.wf.sync_policy.retry,
            what=f"list {info.kind}",
            cancel=self.cancel,
        )

    def read_live(
        self, items: list[Item], inventory: dict[ObjectRef, str]
    ) -> tuple[dict[tuple[str, str, str], Obj], list[tuple[ResourceInfo, Obj]]]:
        """Live objects by (group, kind, namespace/name), and every live object this workflow owns."""
        groups: dict[tuple[ResourceInfo, str], None] = {}
        for it in items:
            if it.info is not None and not it.pending:
                groups[(it.info, it.ref.namespace)] = None
        owned_selector = f"{settings.LABEL_WORKFLOW}={self.wf.id}"
        # Objects the workflow owned at its last sync, where the lists above do not look.
        extra: dict[tuple[ResourceInfo, str], None] = {}
        for ref, api_version in inventory.items():
            info = self.kube.discovery.find(api_version, ref.kind) or self.kube.discovery.preferred(ref.group, ref.kind)
            if info is None:
                continue  # its kind is gone (CRD deleted): nothing left to prune
            ns = ref.namespace if info.namespaced else ""
            if not any(i.group == info.group and i.plural == info.plural and n == ns for i, n in groups):
                extra[(info, ns)] = None
        jobs = [(info, ns, None) for info, ns in groups] + [(info, ns, owned_selector) for info, ns in extra]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(jobs)))) as pool:
            results = list(pool.map(lambda j: (j[0], self._list(*j)), jobs))
        live: dict[tuple[str, str, str], Obj] = {}
        owned: list[tuple[ResourceInfo, Obj]] = []
        for info, objs in results:
            for obj in objs:
                md = obj.get("metadata") or {}
                live[(info.group, info.kind, f"{md.get('namespace', '')}/{md.get('name')}")] = obj
                if get_labels(obj).get(settings.LABEL_WORKFLOW) == self.wf.id:
                    owned.append((info, obj))
        return live, owned

    # -- compare -------------------------------------------------------------------------------------

    def _dry_run(self, it: Item) -> None:
        assert it.info is not None and it.desired is not None
        policy = self.wf.sync_policy.retry

        def apply(force: bool) -> Obj:
            return self.kube.apply(it.info, it.desired, dry_run=True, force=force)  # type: ignore[arg-type]

        try:
            if it.live is None:
                it.dry = with_retry(lambda: apply(True), policy, what=f"dry-run {it.ref}", cancel=self.cancel)
                return
            try:
                it.dry = with_retry(lambda: apply(False), policy, what=f"dry-run {it.ref}", cancel=self.cancel)
            except KubeFieldConflict as e:
                it.drifted = True
                it.conflict_fields = e.conflicts
                it.dry = with_retry(lambda: apply(True), policy, what=f"dry-run {it.ref}", cancel=self.cancel)
        except (UnknownKind, KubeInvalid, KubeNotFound, KubeForbidden) as e:
            text = mask.scrub(str(e), [it.desired, it.live])
            if isinstance(e, KubeInvalid) and "field is immutable" in text and it.live is not None:
                if self.wf.sync_policy.recreate:
                    it.recreate = True
                    return
                it.error = "immutable: " + text
                return
            it.error = text

    def plan(
        self,
        manifests: list[Manifest],
        inventory: dict[ObjectRef, str],
        revision: str | None,
    ) -> Plan:
        plan = Plan(self.wf.id, revision, now_rfc3339())
        with_retry(self.kube.discovery.ensure, self.wf.sync_policy.retry, what="discover API", cancel=self.cancel)
        items = self.resolve(manifests, plan.warnings, plan.conflicts)
        live, owned = self.read_live(items, inventory)

        declared_namespaces = {it.ref.name for it in items if it.ref.kind == "Namespace" and not it.ref.group}
        missing_namespaces = {n for n in declared_namespaces if ("", "Namespace", f"/{n}") not in live}
        to_dry_run: list[Item] = []
        for it in items:
            assert it.info is not None and it.desired is not None
            it.live = live.get((it.info.group, it.ref.kind, f"{it.ref.namespace}/{it.ref.name}"))
            if it.ref.namespace in missing_namespaces:
                it.pending = True
            if it.live is not None:
                owner = get_labels(it.live).get(settings.LABEL_WORKFLOW)
                if owner != self.wf.id:
                    it.action = "blocked"
                    plan.conflicts.append(self._exists_conflict(it, owner))
                    continue
                unchanged_in_git = get_annotations(it.live).get(HASH_ANNOTATION) == get_annotations(it.desired).get(
                    HASH_ANNOTATION
                )
                same = secret_covers if mask.is_secret(it.desired) else covers
                if unchanged_in_git and same(it.desired, it.live):
                    it.action = "unchanged"
                    continue
                it.drifted = unchanged_in_git  # Git did not change it, yet the live object differs
            if it.pending:
                it.action = "create" if it.live is None else "update"
                continue
            to_dry_run.append(it)

        if to_dry_run:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(to_dry_run))) as pool:
                list(pool.map(self._dry_run, to_dry_run))

        for it in to_dry_run:
            if it.error is not None:
                it.action = "blocked"
                plan.conflicts.append(self._validation_conflict(it))
            elif it.recreate:
                it.action = "update"
            elif it.live is None:
                it.action = "create"
            elif normalize(it.dry or {}) == normalize(it.live):
                it.action = "unchanged"
                it.drifted = False
            else:
                it.action = "update"
            if it.action == "update" and it.drifted:
                plan.conflicts.append(self._drift_conflict(it))

        plan.items = sorted(items, key=Item.sort_key)
        self._deletions(plan, items, owned)
        self._changes(plan)
        return plan

    def _deletions(self, plan: Plan, items: list[Item], owned: list[tuple[ResourceInfo, Obj]]) -> None:
        declared = {it.ref for it in items}
        seen: set[ObjectRef] = set()
        for info, obj in owned:
            ref = ObjectRef(
                info.group, info.kind, (obj.get("metadata") or {}).get("namespace") or "", obj["metadata"]["name"]
            )
            if ref in declared or ref in seen or (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            seen.add(ref)
            item = Item(ref, info.api_version, info, None, "live", live=obj, action="delete")
            plan.orphans.append(item)
        plan.orphans.sort(key=Item.sort_key, reverse=True)
        if not plan.orphans:
            return
        policy = self.wf.sync_policy
        if not policy.auto_prune:
            for it in plan.orphans:
                plan.warnings.append(f"{it.ref} is no longer declared in Git; it stays because auto_prune is off")
            return
        if not declared and not policy.allow_empty:
            plan.empty_render_refused = True
            plan.warnings.append(
                f"the render came out empty: slipway will not prune the {len(plan.orphans)} object(s) this workflow "
                "owns (check target_path, or set sync_policy.allow_empty = true to allow it)"
            )
            return
        plan.deletions = list(plan.orphans)
        plan.orphans = []

    def _changes(self, plan: Plan) -> None:
        for it in [*plan.items, *plan.deletions]:
            if it.action not in ("create", "update", "delete"):
                continue
            current = _display(it.live) if it.live is not None else None
            if it.action == "delete":
                desired = None
            elif it.dry is not None and not it.recreate:
                desired = _display(it.dry)
            else:
                desired = _display(it.desired or {})
            current, desired = mask.mask_pair(current, desired)
            subject = impact.Subject(it.action, it.ref.kind, current, desired, recreate=it.recreate)
            level, reason = impact.assess(subject)
            notes = []
            if it.recreate:
                notes.append("an immutable field changes: slipway deletes and creates it")
            if it.pending:
                notes.append("validated by the server when applied: its namespace or kind does not exist yet")
            diff = textdiff.render_diff(it.action, it.ref.resource, current, desired, note="; ".join(notes))
            plan.changes.append(
                Change(
                    type=it.action,
                    resource=it.ref.resource,
                    namespace=it.namespace,
                    api_version=it.api_version,
                    impact=level,
                    diff=diff,
                    current_state=current,
                    desired_state=desired,
                    reasons=[reason],
                    drifted=it.drifted,
                    recreate=it.recreate,
                )
            )
            if level in ("high", "critical"):
                plan.warnings.append(f"{level.capitalize()}-impact change detected: {it.ref.resource}")

    # -- conflicts -------------------------------------------------------------------------------------

    def _states(self, it: Item) -> tuple[Obj | None, Obj | None]:
        current = _display(it.live) if it.live is not None else None
        desired = _display(it.dry if it.dry is not None else it.desired or {})
        return mask.mask_pair(current, desired)

    def _exists_conflict(self, it: Item, owner: str | None) -> Conflict:
        current, desired = self._states(it)
        whom = f"owned by workflow {owner}" if owner else "not managed by slipway"
        return Conflict(
            resource=it.ref.resource,
            namespace=it.namespace,
            type="resource_exists",
            description=f"{it.ref} already exists and is {whom} (declared in {it.source})",
            suggestions=[
                f"To let workflow {self.wf.id} adopt it, label it: "
                f"kubectl label {it.ref.kind.lower()} {it.ref.name}"
                + (f" -n {it.ref.namespace}" if it.ref.namespace else "")
                + f" {settings.LABEL_WORKFLOW}={self.wf.id} --overwrite",
                f"Or remove it from {it.source} if something else should keep managing it",
                "Or delete the existing object so the sync creates it",
            ],
            current_state=current,
            desired_state=desired,
        )

    def _validation_conflict(self, it: Item) -> Conflict:
        current, desired = self._states(it)
        message = it.error or ""
        suggestions = [f"Fix the manifest in {it.source}"]
        if message.startswith("immutable: "):
            message = message.removeprefix("immutable: ")
            suggestions.append("Set sync_policy.recreate = true to let slipway delete and create it again")
        if "namespaces" in message and "not found" in message:
            suggestions.append(f"Create namespace {it.ref.namespace}, or declare it in the same path")
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

    def _drift_conflict(self, it: Item) -> Conflict:
        current, desired = self._states(it)
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


def _display(obj: Obj) -> Obj:
    return for_display(obj, (HASH_ANNOTATION,))


def group_by_info(items: list[Item]) -> dict[ResourceInfo, list[Item]]:
    out: dict[ResourceInfo, list[Item]] = defaultdict(list)
    for it in items:
        if it.info is not None:
            out[it.info].append(it)
    return out


__all__ = ["HASH_ANNOTATION", "Item", "KubeError", "Plan", "Planner", "content_hash", "stamp"]
