"""Resource actions as the engine runs them: only on what the workflow owns, one at a time, on the record.

The rules every front gets from here: an action runs only on an object in the workflow's
inventory (what slipway applied for it), never on anything else in the cluster; it may patch
only that object and create objects only in its namespace; it holds the workflow's claim while it
runs (no sync applies the same object at the same moment); and it is recorded in the workflow's
history as a record of kind ``action`` with the action, the object, the fields it changed (never
their values) and who ran it. The workflow's status is left as it was: a change to a field Git
declares shows as drift on the next plan, as Argo CD shows it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..durations import rfc3339
from ..errors import ConfigError, NotFoundError, NotPermitted, SyncInProgress, describe
from ..kube.objects import ObjectRef
from ..model import Workflow, new_id
from ..results import SyncResult
from .scripts import Action, ActionError, action_script, discover, run_lua, search_path

if TYPE_CHECKING:
    from ..kube import Kube, Obj, ResourceInfo
    from ..store import StateStore

FIELD_MANAGER = "slipway-action"
CONFLICT_RETRIES = 5
_VOLATILE = ("managedFields",)


@dataclass
class Target:
    ref: ObjectRef
    api_version: str
    info: ResourceInfo
    live: Obj

    def public(self) -> dict[str, Any]:
        return {"kind": self.ref.kind, "group": self.ref.group, "apiVersion": self.api_version,
                "namespace": self.ref.namespace, "name": self.ref.name}  # fmt: skip


def resolve(workflow_id: str, inventory: dict[ObjectRef, str], text: str, namespace: str | None = None) -> ObjectRef:
    """The inventory's object that ``Kind/name`` (or ``kind.group/name``) names; NotPermitted when it owns none."""
    kind_part, sep, name = text.partition("/")
    if not sep or not kind_part or not name or "/" in name:
        raise ConfigError(f"{text!r}: name an object as KIND/NAME (e.g. Deployment/web, or deployment.apps/web)")
    kind, _, group = kind_part.partition(".")
    found = [
        ref for ref in inventory
        if ref.kind.lower() == kind.lower() and ref.name == name and (not group or ref.group == group)
        and (namespace is None or ref.namespace == namespace)
    ]  # fmt: skip
    if not found:
        where = f" in namespace {namespace}" if namespace else ""
        raise NotPermitted(
            f"workflow {workflow_id} does not own {kind_part}/{name}{where}: actions run only on objects "
            "the workflow applied (see `slipway workflow resources`)"
        )
    if len(found) > 1:
        names = ", ".join(
            sorted(f"{r.kind}.{r.group or 'core'}/{r.name} in {r.namespace or 'the cluster'}" for r in found)
        )
        raise ConfigError(f"{text!r} names more than one object of workflow {workflow_id} ({names}); "
                          "give the namespace, or KIND.GROUP/NAME")  # fmt: skip
    return found[0]


def clean(obj: Obj) -> Obj:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE}
    return {**obj, "metadata": meta}


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns ``old`` into ``new`` (None: nothing to change)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None if old == new else new
    out: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        out[key] = None
    for key, value in new.items():
        if key not in old:
            out[key] = value
        elif old[key] != value:
            sub = merge_patch(old[key], value)
            out[key] = sub if sub is not None or value is None else value
    return out or None


def paths(patch: Any, prefix: str = "") -> list[str]:
    """The fields a merge patch touches, as dotted paths: what the history keeps (never the values)."""
    if not isinstance(patch, dict) or not patch:
        return [prefix] if prefix else []
    out: list[str] = []
    for key, value in sorted(patch.items()):
        out += paths(value, f"{prefix}.{key}" if prefix else key)
    return out


class Operations:
    """The engine's resource actions and resource tree (mixed into :class:`slipway.engine.Engine`)."""

    store: StateStore
    customizations: tuple[Path, ...] = ()

    def kube_for(self, wf: Workflow) -> Kube:
        raise NotImplementedError

    def _target(self, wf: Workflow, ref_text: str, namespace: str | None) -> Target:
        inventory = self.store.inventory(wf.id)
        ref = resolve(wf.id, inventory, ref_text, namespace)
        kube = self.kube_for(wf)
        info = kube.discovery.lookup(inventory[ref], ref.kind)
        live = kube.get(info, ref.namespace, ref.name)
        if live is None:
            raise NotFoundError(f"{ref} of workflow {wf.id} is not in the cluster (a sync creates it again)")
        return Target(ref, inventory[ref], info, clean(live))

    def action_dirs(self) -> list[Path]:
        """Where action scripts are looked up (:func:`.scripts.search_path`); in a cluster (the kubernetes
        store), the labelled ConfigMaps of slipway's namespace come before the built-ins."""
        dirs = search_path(tuple(self.customizations))
        kube, namespace = getattr(self.store, "kube", None), getattr(self.store, "namespace", None)
        if kube is not None and namespace:
            from .configmaps import directory

            found = directory(kube, namespace)
            if found is not None:
                dirs.insert(len(dirs) - 1, found)
        return dirs

    def actions(self, workflow_id: str, ref_text: str, *, namespace: str | None = None) -> dict[str, Any]:
        """The actions ``discovery.lua`` offers for one object the workflow owns: ``{"object", "actions"}``."""
        wf = self.store.get_workflow(workflow_id)
        target = self._target(wf, ref_text, namespace)
        found = discover(target.ref.group, target.ref.kind, target.live, self.action_dirs())
        return {"workflow_id": wf.id, "object": target.public(), "actions": [a.public() for a in found]}

    def run_action(
        self,
        workflow_id: str,
        ref_text: str,
        action: str,
        params: dict[str, str] | None = None,
        *,
        namespace: str | None = None,
        actor: str | None = None,
        wait: float = 10.0,
    ) -> SyncResult:
        """Run one action on one object the workflow owns and record it; the record (status failed when the
        script or the API server refused). A refusal before anything runs (not owned, unknown action, a
        bad parameter, a sync holding the workflow past ``wait``) raises and records nothing."""
        wf = self.store.get_workflow(workflow_id)
        target = self._target(wf, ref_text, namespace)
        dirs = self.action_dirs()
        offered = {a.name: a for a in discover(target.ref.group, target.ref.kind, target.live, dirs)}
        chosen = offered.get(action)
        if chosen is None:
            known = ", ".join(sorted(offered)) or "none"
            raise ConfigError(f"{target.ref}: no action {action!r} (available: {known})")
        if chosen.disabled:
            raise ConfigError(f"{target.ref}: action {action!r} is disabled for it now (discovery.lua says so)")
        values = _check_params(chosen, params or {})
        script = action_script(target.ref.group, target.ref.kind, action, dirs)
        result = SyncResult(
            id=new_id("action"), workflow_id=wf.id, status="running", start_time=rfc3339(), commit_hash=None,
            message=f"{action} {target.ref.resource}", kind="action", trigger="manual", actor=actor,
        )  # fmt: skip
        deadline = time.monotonic() + wait
        while True:
            try:
                self.store.claim(wf.id, result.id)
                break
            except SyncInProgress:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
        try:
            state = self.store.workflow_state(wf.id)
            self.store.start_sync(result)
            started = time.monotonic()
            try:
                result.changes = self._apply_fresh(wf, target, action, values, script)
                result.status = "succeeded"
                touched = "; ".join(f"{c['type']} {c['resource']}" for c in result.changes) or "nothing to change"
                result.message = f"{action} {target.ref}: {touched}"
            except Exception as e:  # whatever went wrong, the record says so: never left running
                result.status = "failed"
                result.message = f"{action} {target.ref} failed: {describe(e)}"
            result.metrics.resources_processed = 1
            result.metrics.resources_applied = len(result.changes)
            result.metrics.duration = f"{time.monotonic() - started:.1f}s"
            result.end_time = rfc3339()
            self.store.finish_sync(result, workflow_status=state["status"], status_message=state["status_message"] or "",
                                   history_limit=wf.history_limit)  # fmt: skip
        finally:
            self.store.release(wf.id, result.id)
        return result

    def _apply_fresh(
        self, wf: Workflow, target: Target, action: str, params: dict[str, str], script: Path
    ) -> list[dict[str, Any]]:
        """Run the script on the object as it is now, and write what it returns conditionally on that
        version: when a controller updated the object in between (its status, as a Deployment's does
        all through a rollout), read it again and run the script again, as ``kubectl`` retries."""
        from ..kube.client import KubeConflict

        kube = self.kube_for(wf)
        for attempt in range(CONFLICT_RETRIES):
            live = kube.get(target.info, target.ref.namespace, target.ref.name)
            if live is None:
                raise NotFoundError(f"{target.ref} of workflow {wf.id} is not in the cluster (a sync creates it again)")
            target.live = clean(live)
            try:
                return self._apply(wf, target, action, params, script)
            except KubeConflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")

    def _apply(
        self, wf: Workflow, target: Target, action: str, params: dict[str, str], script: Path
    ) -> list[dict[str, Any]]:
        out = run_lua(script, "action", target.live, params)
        impacted: list[dict[str, Any]]
        if isinstance(out, dict):
            impacted = [{"operation": "patch", "resource": out}]
        elif isinstance(out, list) and all(isinstance(i, dict) and "operation" in i for i in out):
            impacted = out
        else:
            raise ActionError(f"{script}: must return the object, or a list of {{operation, resource}}")
        kube = self.kube_for(wf)
        # Checked before anything is written: an action changes all it says, or nothing.
        for item in impacted:
            op, res = item.get("operation"), item.get("resource")
            if op not in ("patch", "create") or not isinstance(res, dict):
                raise ActionError(f"{script}: operation {op!r}: an action may only patch or create an object")
            ref = ObjectRef.of(
                {
                    **res,
                    "metadata": {
                        **(res.get("metadata") or {}),
                        "namespace": (res.get("metadata") or {}).get("namespace") or target.ref.namespace,
                    },
                }
            )
            if op == "patch" and ref != target.ref:
                raise ActionError(f"{script}: may patch only {target.ref}, not {ref}")
            if op == "create" and (not target.ref.namespace or ref.namespace != target.ref.namespace):
                raise ActionError(
                    f"{script}: may create objects only in namespace {target.ref.namespace or '(none)'}, not {ref}"
                )
        changes: list[dict[str, Any]] = []
        # The conditional patch first: a conflict then retries before anything was created.
        for item in sorted(impacted, key=lambda i: i["operation"] != "patch"):
            res = item["resource"]
            if item["operation"] == "patch":
                patch = merge_patch(target.live, res) or {}
                patch.pop("status", None)
                patch = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
                if not patch:
                    continue
                fields = paths(patch)
                meta = patch.setdefault("metadata", {})
                meta["resourceVersion"] = target.live["metadata"].get("resourceVersion")
                kube.patch_merge(target.info, target.ref.namespace, target.ref.name, patch, field_manager=FIELD_MANAGER)
                changes.append({"type": "update", "resource": target.ref.resource, "namespace": target.ref.namespace,
                                "api_version": target.api_version, "action": action, "params": params, "fields": fields})  # fmt: skip
            else:
                res = {**res, "metadata": {**(res.get("metadata") or {}), "namespace": target.ref.namespace}}
                info = kube.discovery.lookup(str(res.get("apiVersion") or ""), str(res.get("kind") or ""))
                made = kube.create(info, res, field_manager=FIELD_MANAGER)
                ref = ObjectRef.of(made)
                changes.append({"type": "create", "resource": ref.resource, "namespace": ref.namespace,
                                "api_version": info.api_version, "action": action, "params": params})  # fmt: skip
        return changes

    def tree(self, workflow_id: str, *, events: int = 5, cancel: threading.Event | None = None) -> list[dict[str, Any]]:
        """Each object the workflow owns, with what its controllers made from it nested under it (:mod:`.tree`)."""
        from .tree import build

        wf = self.store.get_workflow(workflow_id)
        return build(self.kube_for(wf), self.store.inventory(wf.id), self.action_dirs(), events=events, cancel=cancel)


def _check_params(action: Action, given: dict[str, str]) -> dict[str, str]:
    known = {p.name: p for p in action.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"action {action.name}: unknown parameter {unknown[0]!r} (it takes: {names})")
    out: dict[str, str] = {}
    for name, p in known.items():
        value = given.get(name, p.default)
        if value is None or value == "":
            raise ConfigError(f"action {action.name}: parameter {name!r} is required (--param {name}=...)")
        if p.type == "integer":
            try:
                int(str(value))
            except ValueError:
                raise ConfigError(
                    f"action {action.name}: parameter {name!r} must be a whole number, not {value!r}"
                ) from None
        out[name] = str(value)
    return out


__all__ = ["FIELD_MANAGER", "Operations", "merge_patch", "paths", "resolve"]
