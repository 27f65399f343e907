"""Sync records: one Secret per sync or rollback, labelled by workflow, sealed, bounded by ``history_limit``.

Like Helm's release storage: a record is a Secret (``slipway-sync-<id>``) whose labels say whose
it is (workflow id and the Workflow's uid), what it is and how it ended, so a history is one list
by label, and whose data is the record and the objects it declared and backed up, each compressed
and encrypted. Objects beyond 64 KiB, and a record beyond 700 KiB, go to numbered Secrets of their
own (Kubernetes keeps an object under 1 MiB). A record is written whole, one object at a time: a
reader sees the old version or the new, never half. The Workflow's status is written last, so a
sync counts as finished only once its record is. A workflow's history is the records carrying its
uid: after it is removed (``kubectl delete`` too) they stay, as the history of a removed workflow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import NotFoundError
from ...kube import Obj, ObjectRef
from ...kube.client import KubeAlreadyExists
from ...results import SyncMetrics, SyncResult
from ..protocol import SyncObject
from ..sqlite.claims import INTERRUPTED, owner_id
from . import mapping, names
from .base import CHUNK, Base, b64, chunks, log, unb64
from .names import SECRETS

INLINE_OBJECTS = 64 * 1024
RECORD_TYPE = "slipway.dev/sync-record"
_FIELDS = {f.name for f in dataclasses.fields(SyncResult)}
_METRICS = {f.name for f in dataclasses.fields(SyncMetrics)}


def _chunks_key(role: str) -> str:
    return f"slipway.dev/chunks-{role}"


def _result(doc: dict[str, Any]) -> SyncResult:
    data = {k: v for k, v in doc.items() if k in _FIELDS}
    data["metrics"] = SyncMetrics(**{k: v for k, v in (doc.get("metrics") or {}).items() if k in _METRICS})
    return SyncResult(**data)


class Records(Base):
    # -- the record's Secret and its blobs ---------------------------------------------------------------

    def _record_obj(self, sync_id: str) -> Obj:
        obj = self.kube.get(SECRETS, self.namespace, names.sync_name(sync_id))
        if obj is None:
            raise NotFoundError(f"sync {sync_id!r} does not exist")
        return obj

    def _handle(self, sync_id: str) -> Obj:
        """The record's metadata as this process last wrote it (its running syncs), else as read."""
        mine = self._writing.get(sync_id)
        return mine if mine is not None else self._record_obj(sync_id)

    def _wrote(self, sync_id: str, obj: Obj) -> None:
        if sync_id in self._writing:
            self._writing[sync_id] = {"metadata": obj["metadata"]}

    def _blob(self, obj: Obj, role: str) -> bytes | None:
        inline = (obj.get("data") or {}).get(role)
        if inline:
            return unb64(inline)
        count = int((obj["metadata"].get("annotations") or {}).get(_chunks_key(role)) or 0)
        if not count:
            return None
        parts = []
        for i in range(count):
            part = self.kube.get(SECRETS, self.namespace, f"{obj['metadata']['name']}-{role}-{i}")
            if part is None:
                raise NotFoundError(f"{obj['metadata']['name']}: part {i} of its {role} is missing")
            parts.append(unb64((part.get("data") or {}).get("part", "")))
        return b"".join(parts)

    def _blob_patch(self, obj: Obj, role: str, token: bytes, inline_limit: int) -> dict[str, Any]:
        """The patch that stores ``token`` as the record's ``role``, writing its parts first if it spills."""
        name = obj["metadata"]["name"]
        before = int((obj["metadata"].get("annotations") or {}).get(_chunks_key(role)) or 0)
        if len(token) <= inline_limit:
            parts: list[bytes] = []
            patch = {"data": {role: b64(token)}, "metadata": {"annotations": {_chunks_key(role): None}}}
        else:
            parts = chunks(token)
            for i, part in enumerate(parts):
                self._put_part(f"{name}-{role}-{i}", obj, part)
            patch = {"data": {role: None}, "metadata": {"annotations": {_chunks_key(role): str(len(parts))}}}
        for i in range(len(parts), before):
            self.kube.delete(SECRETS, self.namespace, f"{name}-{role}-{i}")
        return patch

    def _put_part(self, name: str, record: Obj, part: bytes) -> None:
        labels = record["metadata"].get("labels") or {}
        obj = {
            "apiVersion": "v1", "kind": "Secret", "type": RECORD_TYPE,
            "metadata": {"name": name, "namespace": self.namespace,
                         "labels": names.managed(**{names.LABEL_RECORD: "objects",
                                                    names.LABEL_SYNC: labels.get(names.LABEL_SYNC, "")})},
            "data": {"part": b64(part)},
        }  # fmt: skip
        try:
            self.kube.create(SECRETS, obj)
        except KubeAlreadyExists:
            self.kube.patch_merge(SECRETS, self.namespace, name, {"data": obj["data"]})

    def _write_record(self, obj: Obj, result: SyncResult) -> Obj:
        doc = dataclasses.asdict(result)
        patch = self._blob_patch(obj, "record", self.seal(doc), CHUNK)
        patch["metadata"]["labels"] = {names.LABEL_SYNC_STATUS: result.status}
        written = self.kube.patch_merge(SECRETS, self.namespace, obj["metadata"]["name"], patch)
        self._wrote(result.id, written)
        return written

    def _read_record(self, obj: Obj) -> SyncResult:
        blob = self._blob(obj, "record")
        if blob is None:
            raise NotFoundError(f"{obj['metadata']['name']} holds no record")
        return _result(self.unseal(blob, f"sync record {obj['metadata']['name']}"))

    # -- the protocol --------------------------------------------------------------------------------

    def start_sync(self, result: SyncResult) -> None:
        seq = [0]

        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any]:
            seq[0] = int(status.get("syncSeq") or 0) + 1
            patch: dict[str, Any] = {"syncSeq": seq[0]}
            if self._ours(status):
                patch.update(status="syncing", message=f"{result.kind} {result.id} running")
            return patch

        wf = self.update_status(result.workflow_id, mutate)
        labels = names.managed(**{
            names.LABEL_RECORD: "sync", names.LABEL_SYNC: names.kname(result.id), names.LABEL_KIND: result.kind,
            names.LABEL_WORKFLOW: result.workflow_id, names.LABEL_WORKFLOW_UID: wf["metadata"]["uid"],
            names.LABEL_SYNC_STATUS: result.status,
        })  # fmt: skip
        obj: Obj = {
            "apiVersion": "v1", "kind": "Secret", "type": RECORD_TYPE,
            "metadata": {"name": names.sync_name(result.id), "namespace": self.namespace, "labels": labels,
                         "annotations": {names.ANNOTATION_SEQ: str(seq[0]), names.ANNOTATION_OWNER: owner_id()}},
            "data": {},
        }  # fmt: skip
        token = self.seal(dataclasses.asdict(result))
        self._writing[result.id] = {"metadata": obj["metadata"]}
        self._record_rows[result.id] = {}
        if len(token) <= CHUNK:
            obj["data"]["record"] = b64(token)
            self._wrote(result.id, self.kube.create(SECRETS, obj))
        else:
            self._write_record(self.kube.create(SECRETS, obj), result)

    def _ours(self, status: dict[str, Any]) -> bool:
        """Whether a sync of this process may write the workflow's run state: nobody holds its claim, or we do.
        A sync whose claim was taken over (its holder was thought gone) keeps its record, not the status."""
        owner = (status.get("claim") or {}).get("owner")
        return not owner or owner == owner_id()

    def update_sync(self, result: SyncResult) -> None:
        """Save a running sync's progress (commit, changes) without finishing it."""
        self._write_record(self._handle(result.id), result)

    def finish_sync(
        self,
        result: SyncResult,
        *,
        workflow_status: str,
        status_message: str,
        inventory: dict[ObjectRef, str] | None = None,
        applied_revision: str | None = None,
        hold_revision: str | bool | None = False,
        mark_rolled_back: list[str] = (),  # type: ignore[assignment]
        history_limit: int | None = None,
    ) -> None:
        """The inventory first (never behind what is applied), then the record, then the rolled-back
        marks, and the Workflow's status last: the sync is finished when its status says so."""
        if inventory is not None:
            self.set_inventory(result.workflow_id, inventory)
        self._write_record(self._handle(result.id), result)
        self._writing.pop(result.id, None)
        self._record_rows.pop(result.id, None)
        for sync_id in mark_rolled_back:
            try:
                obj = self._record_obj(sync_id)
            except NotFoundError:
                continue
            old = self._read_record(obj)
            if not old.rolled_back:
                old.rolled_back = True
                self._write_record(obj, old)
        seq = [0]

        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any] | None:
            seq[0] = int(status.get("syncSeq") or 0)
            if not self._ours(status):
                log.warning("sync %s of %s: another process holds the workflow now; its status stays theirs",
                            result.id, result.workflow_id)  # fmt: skip
                return None
            patch: dict[str, Any] = {"status": workflow_status, "message": status_message}
            if result.kind == "sync":
                patch["lastSyncId"] = result.id
                patch["lastSyncResult"] = mapping.last_sync_status(result)
            if applied_revision is not None:
                patch["appliedRevision"] = applied_revision
            if hold_revision is not False:
                patch["holdRevision"] = hold_revision
            if inventory is not None:
                patch["inventory"] = {"count": len(inventory)}
            return patch

        wf = self.update_status(result.workflow_id, mutate)
        if history_limit and seq[0] > history_limit:
            self._trim(result.workflow_id, str(wf["metadata"]["uid"]), history_limit)

    def _trim(self, workflow_id: str, uid: str, keep: int) -> None:
        selector = names.selector(**{names.LABEL_RECORD: "sync", names.LABEL_WORKFLOW: workflow_id,
                                     names.LABEL_WORKFLOW_UID: uid})  # fmt: skip
        done = [m["metadata"] for m in self.kube.list_metadata(SECRETS, self.namespace, label_selector=selector)
                if (m["metadata"].get("labels") or {}).get(names.LABEL_SYNC_STATUS) != "running"]  # fmt: skip
        done.sort(key=lambda m: -int((m.get("annotations") or {}).get(names.ANNOTATION_SEQ) or 0))
        # Resource actions are kept apart from syncs and rollbacks: a burst of restarts never pushes
        # out the syncs a rollback goes back to.
        actions = [m for m in done if (m.get("labels") or {}).get(names.LABEL_KIND) == "action"]
        runs = [m for m in done if (m.get("labels") or {}).get(names.LABEL_KIND) != "action"]
        for meta in runs[keep:] + actions[keep:]:
            annotations = meta.get("annotations") or {}
            for role in ("record", "desired", "backup"):
                for i in range(int(annotations.get(_chunks_key(role)) or 0)):
                    self.kube.delete(SECRETS, self.namespace, f"{meta['name']}-{role}-{i}")
            self.kube.delete(SECRETS, self.namespace, meta["name"])

    def interrupt_record(self, sync_id: str, message: str | None = None) -> None:
        from ...durations import rfc3339

        try:
            obj = self._record_obj(sync_id)
        except NotFoundError:
            return
        result = self._read_record(obj)
        if result.status == "running":
            result.status, result.end_time, result.message = "interrupted", rfc3339(), message or INTERRUPTED
            self._write_record(obj, result)

    def get_sync(self, sync_id: str) -> SyncResult:
        return self._read_record(self._record_obj(sync_id))

    def history(
        self, workflow_id: str, limit: int | None = None, kind: str | None = None, *, removed: bool = False
    ) -> list[SyncResult]:
        """Newest first; ``removed``: the history a removed workflow of that id left."""
        current = self.workflow_obj_or_none(workflow_id)
        uid = str(current["metadata"]["uid"]) if current is not None else None
        labels = {names.LABEL_RECORD: "sync", names.LABEL_WORKFLOW: workflow_id}
        if kind:
            labels[names.LABEL_KIND] = kind
        if limit and not removed:
            return self._latest(names.selector(**labels), uid, limit)
        rows = []
        for obj in self.kube.list(SECRETS, self.namespace, label_selector=names.selector(**labels)):
            theirs = (obj["metadata"].get("labels") or {}).get(names.LABEL_WORKFLOW_UID)
            if (theirs != uid) != removed:
                continue
            seq = int((obj["metadata"].get("annotations") or {}).get(names.ANNOTATION_SEQ) or 0)
            try:
                result = self._read_record(obj)
            except NotFoundError:
                continue  # being written or trimmed this very moment
            rows.append(((result.start_time, seq) if removed else (seq,), result))
        rows.sort(key=lambda r: r[0], reverse=True)
        out = [r for _, r in rows]
        return out[:limit] if limit else out

    def _latest(self, selector: str, uid: str | None, limit: int) -> list[SyncResult]:
        """The newest ``limit`` records of the current workflow: ordered by the metadata alone, and only
        those read and opened (what the dashboard and /metrics ask for, over a long history)."""
        metas = [m["metadata"] for m in self.kube.list_metadata(SECRETS, self.namespace, label_selector=selector)
                 if (m["metadata"].get("labels") or {}).get(names.LABEL_WORKFLOW_UID) == uid]  # fmt: skip
        metas.sort(key=lambda m: -int((m.get("annotations") or {}).get(names.ANNOTATION_SEQ) or 0))
        out: list[SyncResult] = []
        for meta in metas:
            if len(out) >= limit:
                break
            obj = self.kube.get(SECRETS, self.namespace, meta["name"])
            if obj is None:
                continue  # trimmed this very moment
            try:
                out.append(self._read_record(obj))
            except NotFoundError:
                continue  # being written this very moment
        return out

    def put_sync_objects(self, sync_id: str, role: str, objects: list[SyncObject]) -> None:
        """Store (ref, apiVersion, action, object) rows for a sync, sealed; rows of the same ref replace earlier ones."""
        obj = self._handle(sync_id)
        mine = self._record_rows.get(sync_id)
        rows: dict[str, list[Any]] = {}
        if mine is not None:
            rows = mine.setdefault(role, {})  # what this process wrote of it: no need to read it back
        else:
            old = self._blob(obj, role)
            for row in self.unseal(old, f"objects of sync {sync_id}") if old is not None else []:
                rows[row[0]] = row
        for ref, api_version, action, item in objects:
            rows[ref.key()] = [ref.key(), api_version, action, item]
        patch = self._blob_patch(obj, role, self.seal(list(rows.values())), INLINE_OBJECTS)
        self._wrote(sync_id, self.kube.patch_merge(SECRETS, self.namespace, obj["metadata"]["name"], patch))

    def sync_objects(self, sync_id: str, role: str) -> list[SyncObject]:
        try:
            obj = self._record_obj(sync_id)
        except NotFoundError:
            return []
        blob = self._blob(obj, role)
        if blob is None:
            return []
        return [(ObjectRef.from_key(k), v, a, o) for k, v, a, o in self.unseal(blob, f"objects of sync {sync_id}")]

    def import_sync(
        self, result: SyncResult, workflow_uid: str, seq: int, objects: dict[str, list[SyncObject]]
    ) -> bool:
        """Copy a finished sync in as it was (a migration); False when it is here already."""
        existing = self.kube.get(SECRETS, self.namespace, names.sync_name(result.id))
        if existing is not None:
            if self._blob(existing, "record") is not None:
                return False
            self.kube.delete(SECRETS, self.namespace, existing["metadata"]["name"])  # a copy cut short
        labels = names.managed(**{
            names.LABEL_RECORD: "sync", names.LABEL_SYNC: names.kname(result.id), names.LABEL_KIND: result.kind,
            names.LABEL_WORKFLOW: result.workflow_id, names.LABEL_WORKFLOW_UID: workflow_uid,
            names.LABEL_SYNC_STATUS: result.status,
        })  # fmt: skip
        obj = self.kube.create(SECRETS, {
            "apiVersion": "v1", "kind": "Secret", "type": RECORD_TYPE,
            "metadata": {"name": names.sync_name(result.id), "namespace": self.namespace, "labels": labels,
                         "annotations": {names.ANNOTATION_SEQ: str(seq)}},
            "data": {},
        })  # fmt: skip
        for role, rows in objects.items():
            if rows:
                self.put_sync_objects(result.id, role, rows)
        # The record last: a copy cut short is found incomplete (no record) and copied again.
        self._write_record(self._record_obj(result.id) if objects else obj, result)
        return True
