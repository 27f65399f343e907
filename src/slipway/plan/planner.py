"""Plan: what a sync would change, computed against the live cluster.

For each rendered object: resolve its kind with discovery (or with a CRD declared in the same
render), default its namespace, stamp ownership, then compare with the live object
(:mod:`.live` reads them, narrowed by the workflow's selector). An object that is not this
workflow's — by its marks, see :mod:`.ownership` — is a ``resource_exists`` conflict. An object
whose ownership hash matches and whose declared fields all hold live is unchanged without another
request; anything else gets a server-side apply dry-run (bounded concurrency), first without
force so that fields someone else changed show up as an ``out_of_sync`` conflict, and the dry-run
result is compared with the live object after normalization. What the inventory says the workflow
applied and Git no longer declares is pruned when auto_prune is on, within :mod:`.prune`'s rules.
Hooks are planned apart: each is validated by a dry-run create, and a named hook whose name
something other than its own earlier run holds is a ``resource_exists`` conflict (:mod:`.hookcheck`).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .. import settings, waves
from ..durations import rfc3339
from ..errors import KubeError, KubeForbidden, KubeInvalid, KubeNotFound, ManifestError
from ..kube import KubeFieldConflict, Obj, ObjectRef, ResourceInfo
from ..kube.objects import get_annotations, meta, split_api_version
from ..model import Workflow
from ..render import Manifest
from ..results import Change, Conflict
from ..retry import with_retry
from . import conflicts, hookcheck, ignore, impact, mask, ownership, prune
from .live import LiveReader, LiveState
from .model import HookItem, Item, Plan
from .normalize import covers, display, normalize, secret_covers
from .ownership import HASH_ANNOTATION, stamp
from .validate import LocalCheck, crd_schemas

if TYPE_CHECKING:
    from ..kube import Kube


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
        instance: str,
        concurrency: int = 16,
        cancel: threading.Event | None = None,
        local_checks: bool = False,
        own_namespace: str | None = None,
    ) -> None:
        self.kube = kube
        self.own_namespace = own_namespace
        self.wf = workflow
        self.instance = instance
        self.concurrency = concurrency
        self.cancel = cancel
        # New objects checked against the server's schemas here (a sync) instead of by a dry-run each
        # (a diff, which shows what the server would default).
        self.local_checks = local_checks

    def _in_own_namespace(self, obj: Obj, namespaced: bool, source: str, out: list[Conflict]) -> bool:
        """Git may declare Workflows and Repositories in slipway's own namespace (an app of apps), and
        nothing else there: its Secrets and ConfigMaps are slipway's state and its admin's
        configuration (which hooks may run), and a pod there could run as slipway. A blocking conflict."""
        md = meta(obj)
        if not namespaced or md.get("namespace") != self.own_namespace:
            return False
        group, _ = split_api_version(obj["apiVersion"])
        if group == "slipway.dev" and obj["kind"] in ("Workflow", "Repository"):
            return False
        ref = ObjectRef.of(obj)
        out.append(
            Conflict(
                resource=ref.resource,
                namespace=self.own_namespace,
                type="validation",
                description=f"{source}: {obj['kind']}/{md.get('name') or md.get('generateName')} is in slipway's own "
                f"namespace {self.own_namespace}, where Git may declare only Workflows and Repositories",
                suggestions=[
                    f"Declare it in another namespace in {source}",
                    "slipway's admin configures slipway's namespace (its ConfigMap slipway-admin grants shell hooks)",
                ],
                desired_state=mask.mask_one(obj),
            )
        )
        return True

    # -- resolve -----------------------------------------------------------------------------------

    def resolve(self, manifests: list[Manifest], plan: Plan) -> list[Item]:
        """Kinds, namespaces, stamps, waves and the duplicate check; unknown kinds become conflicts and
        hooks go to ``plan.hooks``, apart from the desired state."""
        warnings, conflicts = plan.warnings, plan.conflicts
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
            try:
                hook, wave = waves.hook_of(obj), waves.wave_of(obj)
            except waves.WaveError as e:
                raise ManifestError(f"{m.source}: {kind}/{md.get('name') or md.get('generateName')}: {e}") from None
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
                name = md.get("name") or md.get("generateName")
                warnings.append(f"{m.source}: {kind}/{name} is cluster-scoped; its namespace is ignored")
                del md["namespace"]
            if self._in_own_namespace(obj, info.namespaced, m.source, conflicts):
                continue
            if hook is not None:
                plan.hooks.append(self._hook(obj, info, hook, m.source, pending))
                continue
            ref = ObjectRef.of(obj)
            if ref in seen:
                raise ManifestError(f"{m.source}: {ref} is declared twice (first in {seen[ref]})")
            seen[ref] = m.source
            items.append(
                Item(
                    ref, api_version, info, stamp(obj, self.wf.id, self.instance), m.source, obj, pending=pending,
                    wave=wave,
                )
            )  # fmt: skip
        return items

    def _hook(self, obj: Obj, info: ResourceInfo, spec: waves.HookSpec, source: str, pending: bool) -> HookItem:
        md = meta(obj)
        generate = not md.get("name")
        ref = ObjectRef(info.group, info.kind, md.get("namespace") or "", md.get("name") or md["generateName"])
        identity = waves.identity(self.wf.id, obj)
        desired = stamp(obj, self.wf.id, self.instance)
        meta(desired)["labels"][ownership.HOOK_LABEL] = identity
        return HookItem(ref, obj["apiVersion"], info, desired, source, spec, identity, generate, pending)

    def _validate_hook(self, h: HookItem) -> None:
        """A hook is checked by a dry-run create now, so a bad one stops the sync before anything runs."""
        assert h.info is not None
        try:
            with_retry(
                lambda: self.kube.create(h.info, h.desired, dry_run=True),  # type: ignore[arg-type]
                self.wf.sync_policy.retry, what=f"dry-run {h.resource}", cancel=self.cancel,
            )  # fmt: skip
        except KubeInvalid as e:
            if e.reason != "AlreadyExists":  # its earlier run: deleted before this one is created
                h.error = mask.scrub(str(e), [h.desired])
        except (KubeNotFound, KubeForbidden) as e:
            h.error = mask.scrub(str(e), [h.desired])

    # -- compare -------------------------------------------------------------------------------------

    def _dry_run(self, it: Item) -> None:
        assert it.info is not None and it.desired is not None
        policy = self.wf.sync_policy.retry

        def apply(force: bool) -> Obj:
            return self.kube.apply(it.info, it.desired, dry_run=True, force=force)  # type: ignore[arg-type]

        try:
            if it.live is None:
                it.returned = with_retry(lambda: apply(True), policy, what=f"dry-run {it.ref}", cancel=self.cancel)
                return
            try:
                it.returned = with_retry(lambda: apply(False), policy, what=f"dry-run {it.ref}", cancel=self.cancel)
            except KubeFieldConflict as e:
                it.drifted = True
                it.conflict_fields = e.conflicts
                it.returned = with_retry(lambda: apply(True), policy, what=f"dry-run {it.ref}", cancel=self.cancel)
        except KubeError as e:
            if e.retryable:
                raise  # the retry policy ran out: the plan cannot be computed, it is not the object's fault
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
        plan = Plan(self.wf.id, revision, rfc3339())
        policy = self.wf.sync_policy
        with_retry(self.kube.discovery.ensure, policy.retry, what="discover API", cancel=self.cancel)
        items = self.resolve(manifests, plan)
        reader = LiveReader(self.kube, self.wf.id, policy.retry, concurrency=self.concurrency, cancel=self.cancel)
        live = reader.read(items, inventory)
        items += self._namespace_to_create(items)

        ns_kind = ("", "Namespace")
        missing_namespaces = {
            it.ref.name for it in items if it.ref.group_kind == ns_kind and not self._live_of(it, live.objects)
        }
        to_dry_run: list[Item] = []
        pending_new: list[Item] = []
        for it in items:
            assert it.info is not None and it.desired is not None
            it.live = self._live_of(it, live.objects)
            if it.ref.namespace in missing_namespaces:
                it.pending = True
            rules = ignore.matching(policy.ignore_differences, it.ref)
            if it.live is not None and rules:
                it.ignored = ignore.Ignored(rules, it.live)
                it.desired = it.ignored.desired(it.desired, it.live)
            if it.live is not None:
                who = ownership.owner(it.live, self.wf.id, self.instance)
                mine = who == "ours" or (who == "legacy" and it.ref in inventory)
                if not mine and not (it.ref in inventory and who == "unmarked"):
                    it.action = "blocked"
                    plan.conflicts.append(conflicts.resource_exists(it, self.wf.id, self.instance))
                    continue
                if not mine:
                    # Ours by the inventory, its marks removed by hand: drift, and Git wins on sync.
                    it.drifted, it.conflict_fields = True, ["metadata.labels (slipway's ownership marks)"]
                unchanged_in_git = get_annotations(it.live).get(HASH_ANNOTATION) == get_annotations(it.desired).get(
                    HASH_ANNOTATION
                )
                same = secret_covers if mask.is_secret(it.desired) else covers
                if unchanged_in_git and same(it.desired, it.live) and not it.drifted:
                    it.action = "unchanged"
                    continue
                it.drifted = it.drifted or unchanged_in_git  # Git did not change it, yet the live object differs
            if it.pending:
                it.action = "create" if it.live is None else "update"
                if it.live is None:
                    pending_new.append(it)
                continue
            to_dry_run.append(it)
        if self.local_checks:
            to_dry_run = self._check_locally(manifests, to_dry_run, pending_new, plan)

        for h in plan.hooks:
            h.pending = h.pending or h.ref.namespace in missing_namespaces
        hooks = [h for h in plan.hooks if h.spec.runs and not h.pending]
        named = [h for h in hooks if not h.generate]
        if to_dry_run or hooks:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(to_dry_run) + len(hooks))) as pool:
                list(pool.map(self._dry_run, to_dry_run))
                list(pool.map(self._validate_hook, hooks))
                namesakes = list(pool.map(lambda h: hookcheck.live_of(self.kube, h, policy.retry, self.cancel), named))
            for h, namesake in zip(named, namesakes, strict=True):
                taken = hookcheck.existing_conflict(h, namesake) if namesake is not None else None
                plan.conflicts += [taken] if taken is not None else []
        plan.conflicts += [conflicts.hook_validation(h) for h in hooks if h.error is not None]
        for h in plan.hooks:
            why = hookcheck.cascade_refused(h) if h.spec.runs else None
            plan.conflicts += [hookcheck.cascade_conflict(h, why)] if why else []
        plan.hooks.sort(key=HookItem.plan_key)

        for it in to_dry_run:
            if it.error is not None:
                it.action = "blocked"
                plan.conflicts.append(conflicts.validation(it))
            elif it.recreate:
                it.action = "update"
            elif it.live is None:
                it.action = "create"
            elif it.view(normalize(it.returned or {})) == it.view(normalize(it.live)):
                it.action = "unchanged"
                it.drifted = False
            else:
                it.action = "update"
            if it.action == "update" and it.drifted:
                plan.conflicts.append(conflicts.out_of_sync(it))

        plan.items = sorted(items, key=Item.sort_key)
        self._deletions(plan, items, inventory, live)
        self._changes(plan)
        return plan

    def _check_locally(
        self, manifests: list[Manifest], to_dry_run: list[Item], pending_new: list[Item], plan: Plan
    ) -> list[Item]:
        """New objects the local check finds well-formed need no dry-run; the rest still get one.

        An object whose namespace or kind does not exist yet cannot be asked about: the local
        check's errors are its validation conflict.
        """
        checker = LocalCheck(self.kube, crd_schemas([m.obj for m in manifests]))
        sure = [it for it in to_dry_run if it.live is None and checker.check(it).ok]
        absent = self._namespaces_not_known([it.ref.namespace for it in sure if it.ref.namespace])
        skip = {id(it) for it in sure if it.ref.namespace not in absent}
        for it in sure:
            if id(it) in skip:
                it.action = "create"
        for it in pending_new:
            verdict = checker.check(it)
            if verdict.errors:
                it.action, it.error = "blocked", f"does not match its kind's schema: {verdict.message()}"
                plan.conflicts.append(conflicts.validation(it))
        return [it for it in to_dry_run if id(it) not in skip]

    def _namespaces_not_known(self, names: list[str]) -> set[str]:
        """Of ``names``, those not known to exist (missing, or not readable): their objects get a dry-run,
        which says what is wrong."""
        info = self.kube.discovery.lookup("v1", "Namespace")
        out = set()
        for ns in sorted(set(names)):
            try:
                found = with_retry(
                    lambda ns=ns: self.kube.get(info, "", ns),  # type: ignore[misc]
                    self.wf.sync_policy.retry, what=f"get namespace {ns}", cancel=self.cancel,
                )  # fmt: skip
            except (KubeForbidden, KubeInvalid):
                found = None
            if found is None:
                out.add(ns)
        return out

    @staticmethod
    def _live_of(it: Item, objects: dict[ObjectRef, Obj]) -> Obj | None:
        return objects.get(it.ref)

    def _namespace_to_create(self, items: list[Item]) -> list[Item]:
        """sync_policy.create_namespace: the destination namespace, when nothing declares it and it is missing.

        Like Argo CD's CreateNamespace it is created and never pruned: it is not in the inventory.
        """
        ns = self.wf.destination.namespace
        if not self.wf.sync_policy.create_namespace or any(
            it.ref.group_kind == ("", "Namespace") and it.ref.name == ns for it in items
        ):
            return []
        info = self.kube.discovery.lookup("v1", "Namespace")
        if with_retry(lambda: self.kube.get(info, "", ns), self.wf.sync_policy.retry, what=f"get namespace {ns}"):
            return []
        obj: Obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        desired = {**obj, "metadata": {"name": ns, "labels": {settings.LABEL_MANAGED_BY: "slipway"}}}
        source = "sync_policy.create_namespace"
        return [Item(ObjectRef("", "Namespace", "", ns), "v1", info, desired, source, obj, tracked=False)]

    def _deletions(self, plan: Plan, items: list[Item], inventory: dict[ObjectRef, str], live: LiveState) -> None:
        declared = {it.ref for it in items}
        for ref in sorted(live.unmarked):
            if ref not in declared:
                plan.warnings.append(
                    f"{ref} is no longer declared in Git and no longer carries slipway's marks: slipway leaves it"
                )
        candidates: list[Item] = []
        for ref in inventory:
            obj = live.objects.get(ref)
            if ref in declared or obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            info = live.infos[ref]
            candidates.append(
                Item(ref, info.api_version, info, None, "live", live=obj, action="delete", wave=_wave(obj))
            )
        candidates.sort(key=Item.sort_key, reverse=True)
        policy = self.wf.sync_policy
        for it in candidates:
            assert it.live is not None
            why = prune.why_kept(it.live, self.wf.id, self.instance)
            if why is not None:
                plan.warnings.append(f"{it.ref} is no longer declared in Git; slipway does not prune it: {why}")
                it.action = "unchanged"
                plan.orphans.append(it)
            elif not policy.auto_prune:
                plan.warnings.append(f"{it.ref} is no longer declared in Git; it stays because auto_prune is off")
                plan.orphans.append(it)
            else:
                plan.deletions.append(it)
        if plan.deletions and not declared and not policy.allow_empty:
            plan.empty_render_refused = True
            plan.warnings.append(
                f"the render came out empty: slipway will not prune the {len(plan.deletions)} object(s) this "
                "workflow owns (check target_path, or set sync_policy.allow_empty = true to allow it)"
            )
            plan.orphans += plan.deletions
            plan.deletions = []
            return
        self._keep_what_would_cascade(plan)

    def _keep_what_would_cascade(self, plan: Plan) -> None:
        """A Namespace or CRD that still holds something is not pruned: its deletion would cascade."""
        holders = [it for it in plan.deletions if it.ref.kind in ("Namespace", "CustomResourceDefinition")]
        if not holders:
            return
        leaving = {it.ref for it in plan.deletions}
        check = prune.ContentCheck(self.kube, self.wf.sync_policy.retry, cancel=self.cancel)
        for it in holders:
            found, unknown = check.foreign(it, leaving)
            if not found and not unknown:
                continue
            what = "namespace" if it.ref.kind == "Namespace" else "custom resource definition"
            if found:
                why = f"the {what} still holds {len(found)} object(s) it would delete with it: {prune.named(found)}"
                held = f"{it.ref} still holds {len(found)} object(s)"
            else:
                kinds = prune.named(unknown)
                where = f"in namespace {it.ref.name}" if it.ref.kind == "Namespace" else "in the cluster"
                why = (
                    f"its contents are unknown: slipway cannot list {kinds} {where}, and deleting the {what} "
                    "would delete whatever is there"
                )
                held = f"{it.ref} (cannot list {kinds})"
            plan.warnings.append(f"{it.ref} is no longer declared in Git; slipway does not prune it: {why}")
            plan.held.append(held)
            plan.deletions.remove(it)
            plan.orphans.append(it)

    def _changes(self, plan: Plan) -> None:
        for it in [*plan.items, *plan.deletions]:
            if it.action not in ("create", "update", "delete"):
                continue
            current = it.view(display(it.live)) if it.live is not None else None
            if it.action == "delete":
                desired = None
            elif it.returned is not None and not it.recreate and it.action != "create":
                # An update shows the server's dry-run (its defaults are on both sides); a create shows
                # what Git declares: the fields the server would set (a Service's clusterIP) are not Git's.
                desired = it.view(display(it.returned))
            else:
                desired = it.view(display(it.desired or {}))
            current, desired = mask.mask_pair(current, desired)
            subject = impact.Subject(it.action, it.ref.kind, current, desired, recreate=it.recreate)
            level, reason = impact.assess(subject)
            notes = []
            if it.recreate:
                notes.append("an immutable field changes: slipway deletes and creates it")
            if it.pending:
                notes.append("its namespace or kind does not exist yet: checked against its schema here, and by the "
                             "server when applied")  # fmt: skip
            plan.changes.append(
                Change(
                    type=it.action,
                    resource=it.ref.resource,
                    namespace=it.namespace,
                    api_version=it.api_version,
                    impact=level,
                    current_state=current,
                    desired_state=desired,
                    reasons=[reason],
                    drifted=it.drifted,
                    recreate=it.recreate,
                    wave=it.wave,
                    note="; ".join(notes),
                )
            )
            if level in ("high", "critical"):
                plan.warnings.append(f"{level.capitalize()}-impact change detected: {it.ref.resource}")


def _wave(live: Obj) -> int:
    """A live object's wave, for the order it is pruned in; an unreadable one prunes with wave 0."""
    try:
        return waves.wave_of(live)
    except waves.WaveError:
        return 0
