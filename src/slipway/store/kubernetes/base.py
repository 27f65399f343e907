"""What the Kubernetes store's parts share: the connection, the namespace, identity, sealing, conditional writes.

The store's identity (a ConfigMap) and its encryption key (a Secret) are created once per
namespace, race-safely: whoever creates first wins and everyone else reads what won, so every
replica stamps the same instance id and opens what another sealed. Sealed values are JSON,
compressed, then encrypted with that key (Fernet); a blob too big for one object is split over
several (:func:`chunks`), since Kubernetes keeps an object under about 1 MiB. Every write that
must not lose another's is conditional on the resourceVersion it read (:meth:`Base.update_status`
retries on a conflict with what it reads again).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import zlib
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from ...errors import ConfigError, KubeForbidden, KubeNotFound, NotFoundError, SlipwayError
from ...kube import Kube, Obj, connect
from ...kube.client import KubeAlreadyExists, KubeConflict
from ...kube.objects import conditions as conditions_of
from . import names
from .names import CONFIGMAPS, KEY_SECRET, NAMESPACES, SECRETS, WORKFLOWS

log = logging.getLogger("slipway.store")

CHUNK = 700 * 1024  # bytes of a sealed blob per object: well under the 1 MiB a Secret may hold
ATTEMPTS = 50


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def chunks(blob: bytes, size: int = CHUNK) -> list[bytes]:
    return [blob[i : i + size] for i in range(0, len(blob), size)] or [b""]


def now_iso() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Base:
    def __init__(self, kube: Kube | None = None, namespace: str | None = None) -> None:
        self.kube = kube or connect()
        self.namespace = namespace or names.namespace()
        # Set by a shard elector (:mod:`slipway.shards`): who this replica is, and which Lease
        # proves it alive for a workflow's claim.
        self.identity: str | None = None
        self.lease_for: Callable[[str], str | None] = lambda workflow_id: None
        self._lock = threading.Lock()
        # Each Workflow as this process last read or wrote it: the starting point of its next
        # conditional status write (a stale one costs a conflict and a read), and its uid.
        self._seen: dict[str, Obj] = {}
        # Records of the syncs this process runs: their metadata and objects as it last wrote them,
        # so finishing them needs no read back (dropped when they finish).
        self._writing: dict[str, Obj] = {}
        self._record_rows: dict[str, dict[str, dict[str, list[Any]]]] = {}
        self._ensure_namespace()
        self._instance = self._once_configmap()
        self._fernet = Fernet(self._once_key())

    @property
    def instance_id(self) -> str:
        return self._instance

    def close(self) -> None:
        """Nothing to close: the connection is shared (:func:`slipway.kube.connect`)."""

    # -- created once, race-safely ---------------------------------------------------------------------

    def _ensure_namespace(self) -> None:
        try:
            if self.kube.get(NAMESPACES, "", self.namespace) is not None:
                return
        except KubeForbidden:
            return  # a replica's Role reaches into its namespace only: it exists, or nothing below works

        try:
            self.kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": self.namespace, "labels": names.managed()}})  # fmt: skip
        except KubeAlreadyExists:
            pass
        except SlipwayError as e:
            raise ConfigError(
                f"slipway's namespace {self.namespace} does not exist and cannot be created ({e}); "
                "create it, or run `slipway install`"
            ) from None

    def _create_or_read(self, info: Any, obj: Obj) -> Obj:
        try:
            return self.kube.create(info, obj)
        except KubeAlreadyExists:
            got = self.kube.get(info, self.namespace, obj["metadata"]["name"])
            if got is None:  # deleted in between: try once more
                return self.kube.create(info, obj)
            return got

    def _once_configmap(self) -> str:
        got = self.kube.get(CONFIGMAPS, self.namespace, names.INSTANCE_CONFIGMAP)
        if got is None:
            # 12 hex digits, as the SQLite store makes them: short enough for a label value.
            got = self._create_or_read(CONFIGMAPS, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": names.INSTANCE_CONFIGMAP, "namespace": self.namespace, "labels": names.managed()},
                "data": {"instanceId": secrets.token_hex(6)},
            })  # fmt: skip
        value = str((got.get("data") or {}).get("instanceId") or "")
        if not value:
            raise SlipwayError(f"ConfigMap {names.INSTANCE_CONFIGMAP} in namespace {self.namespace} has no instanceId")
        return value

    def _once_key(self) -> bytes:
        got = self.kube.get(SECRETS, self.namespace, KEY_SECRET)
        if got is None:
            got = self._create_or_read(SECRETS, {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": KEY_SECRET, "namespace": self.namespace, "labels": names.managed()},
                "data": {"key": b64(Fernet.generate_key())},
            })  # fmt: skip
        try:
            return unb64((got.get("data") or {})["key"])
        except (KeyError, ValueError):
            raise SlipwayError(f"Secret {KEY_SECRET} in namespace {self.namespace} holds no encryption key") from None

    def set_instance_id(self, value: str) -> None:
        """Adopt another store's identity (a migration: the objects it applied carry it)."""
        self.kube.patch_merge(CONFIGMAPS, self.namespace, names.INSTANCE_CONFIGMAP, {"data": {"instanceId": value}})
        self._instance = value

    # -- sealing -------------------------------------------------------------------------------------

    def seal(self, data: Any) -> bytes:
        text = json.dumps(data, separators=(",", ":"), default=str).encode()
        return self._fernet.encrypt(zlib.compress(text, 6))

    def unseal(self, token: bytes, what: str) -> Any:
        try:
            return json.loads(zlib.decompress(self._fernet.decrypt(token)))
        except InvalidToken:
            raise SlipwayError(
                f"cannot decrypt {what} with the key in Secret {KEY_SECRET} of namespace {self.namespace}: "
                "the key changed"
            ) from None

    # -- what one part asks of another (each defined once, in its part) ---------------------------------

    def claim_alive(self, claim: dict[str, Any], *, wait: bool = False, unjudged: bool = True) -> bool:
        raise NotImplementedError  # Claims

    def interrupt_record(self, sync_id: str, message: str | None = None) -> None:
        raise NotImplementedError  # Records

    def set_inventory(self, workflow_id: str, entries: dict[Any, str]) -> None:
        raise NotImplementedError  # Inventory

    def forget_inventory(self, workflow_uid: str) -> None:
        raise NotImplementedError  # Inventory

    # -- workflows as objects ---------------------------------------------------------------------------

    def workflow_obj(self, workflow_id: str) -> Obj:
        obj = self.workflow_obj_or_none(workflow_id)
        if obj is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return obj

    def workflow_obj_or_none(self, workflow_id: str) -> Obj | None:
        obj = self.kube.get(WORKFLOWS, self.namespace, names.kname(workflow_id))
        if obj is None or object_id(obj) != workflow_id:
            self._seen.pop(workflow_id, None)
            return None
        self._seen[workflow_id] = obj
        return obj

    def workflow_uid(self, workflow_id: str) -> str | None:
        """The uid of the Workflow as this process last saw it (read once when it has not)."""
        obj = self._seen.get(workflow_id) or self.workflow_obj_or_none(workflow_id)
        return str(obj["metadata"]["uid"]) if obj is not None else None

    def update_status(self, workflow_id: str, mutate: Callable[[Obj, dict[str, Any]], dict[str, Any] | None]) -> Obj:
        """Let ``mutate(obj, status)`` say what changes in the Workflow's status (None: nothing), and
        write that on the condition that nobody wrote in between; read and try again if someone did.

        It starts from the Workflow as this process last saw it: a write from a stale copy fails
        its precondition and is tried again on a fresh read, and a decision not to write (or to
        refuse, as a claim held by someone else does) is only ever taken on a fresh read."""
        cached = self._seen.get(workflow_id)
        for _ in range(ATTEMPTS):
            fresh = cached is None
            obj = self.workflow_obj(workflow_id) if cached is None else cached
            cached = None
            status = dict(obj.get("status") or {})
            try:
                patch = mutate(obj, status)
            except SlipwayError:
                if fresh:
                    raise
                continue
            if patch is None:
                if fresh:
                    return obj
                continue
            merged = {**status, **patch}
            cond = conditions(merged, obj)
            if cond is not None:
                patch["conditions"] = cond
            meta = obj["metadata"]
            body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": patch}
            try:
                written = self.kube.patch_merge(WORKFLOWS, self.namespace, meta["name"], body, subresource="status")
            except KubeConflict:
                continue
            except KubeNotFound:
                self._seen.pop(workflow_id, None)
                raise NotFoundError(f"workflow {workflow_id!r} does not exist") from None
            self._seen[workflow_id] = written
            return written
        raise SlipwayError(f"workflow {workflow_id}: its status kept changing under {ATTEMPTS} attempts to write it")


def object_id(obj: Obj) -> str:
    """The id an object stands for: its ``slipway.dev/id`` label, else its name (written with kubectl)."""
    meta = obj.get("metadata") or {}
    return str((meta.get("labels") or {}).get(names.LABEL_ID) or meta.get("name") or "")


_SYNCED = {
    "synced": ("True", "Synced"),
    "failed": ("False", "SyncFailed"),
    "degraded": ("False", "Degraded"),
    "syncing": ("Unknown", "Syncing"),
    "active": ("Unknown", "NeverSynced"),
}
_HEALTHY = {"synced": ("True", "Healthy"), "degraded": ("False", "Degraded"), "failed": ("Unknown", "SyncFailed"),
            "active": ("Unknown", "NeverSynced")}  # fmt: skip


def conditions(new: dict[str, Any], obj: Obj) -> list[dict[str, Any]] | None:
    """Ready, Synced and Healthy from the run state (None when they stay as they are). A transition
    time moves only when a condition's status does; Ready is the spec's validity, kept as it is."""
    status = str(new.get("status") or "active")
    message = str(new.get("message") or "")
    generation = (obj.get("metadata") or {}).get("generation")
    current = conditions_of({"status": new})  # the patch's own conditions (a Ready it sets), else the old ones
    wanted: dict[str, tuple[str, str, str]] = {}
    ready = current.get("Ready")
    wanted["Ready"] = (
        (ready["status"], ready.get("reason", ""), ready.get("message", "")) if ready else ("True", "Valid", "")
    )
    wanted["Synced"] = (*_SYNCED.get(status, ("Unknown", status)), message)
    axes = new.get("assessment") or {}
    if axes.get("sync_status") and axes.get("health"):
        # The two axes as last computed (slipway.axes) say it in the words every front uses.
        sync, health = axes["sync_status"], axes["health"]
        word = {"Synced": "True", "OutOfSync": "False"}.get(sync.get("status"), "Unknown")
        wanted["Synced"] = (word, str(sync.get("status") or "Unknown"), str(sync.get("message") or ""))
        word = {"Healthy": "True", "Degraded": "False", "Missing": "False"}.get(health.get("status"), "Unknown")
        wanted["Healthy"] = (word, str(health.get("status") or "Unknown"), str(health.get("message") or ""))
    elif status in _HEALTHY:
        wanted["Healthy"] = (*_HEALTHY[status], message if status in ("degraded", "failed") else "")
    elif "Healthy" in current:
        h = current["Healthy"]
        wanted["Healthy"] = (h["status"], h.get("reason", ""), h.get("message", ""))
    else:
        wanted["Healthy"] = ("Unknown", "NeverSynced", "")
    return merge_conditions(current, wanted, generation)


def merge_conditions(
    current: dict[str, dict[str, Any]], wanted: dict[str, tuple[str, str, str]], generation: Any
) -> list[dict[str, Any]] | None:
    out, changed = [], False
    for kind, (status, reason, message) in wanted.items():
        old = current.get(kind) or {}
        same = old.get("status") == status
        cond = {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message[:1000],
            "lastTransitionTime": old.get("lastTransitionTime") if same and old else now_iso(),
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        changed |= any(old.get(k) != v for k, v in cond.items())
        out.append(cond)
    for kind, cond in current.items():
        if kind not in wanted:
            out.append(cond)
    return out if changed else None
