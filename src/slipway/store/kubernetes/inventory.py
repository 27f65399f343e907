"""The inventory: what each workflow applied and owns, in ConfigMaps owned by its Workflow.

Object identities are not secret, so a plain ConfigMap (``slipway-inv-<workflow uid>``) holds
them, one ``group|kind|namespace|name<TAB>apiVersion`` line each, sorted. A Workflow with
thousands of objects spills into numbered ConfigMaps of one generation (``-<gen>-<i>``), written
before the head that names them, and older generations are deleted only after: a reader follows
the head and sees one generation whole. Every ConfigMap has the Workflow as owner, so the garbage
collector removes them with it (``kubectl delete workflow`` too); named by its uid, a new workflow
of the same id starts with an empty inventory, as in the SQLite store.
"""

from __future__ import annotations

import secrets
from typing import Any

from ...errors import SlipwayError
from ...kube import Obj, ObjectRef
from ...kube.client import KubeAlreadyExists, KubeConflict
from . import names
from .base import ATTEMPTS, Base
from .names import CONFIGMAPS

CHUNK_TEXT = 900 * 1024  # characters of refs per ConfigMap (a ConfigMap holds at most 1 MiB)
PARTS = "slipway.dev/parts"


def _lines(entries: dict[ObjectRef, str]) -> list[str]:
    return sorted(f"{ref.key()}\t{v}" for ref, v in entries.items())


def _split(lines: list[str]) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > CHUNK_TEXT:
            out.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    out.append("\n".join(current))
    return out


def _parse(text: str, into: dict[ObjectRef, str]) -> None:
    for line in text.splitlines():
        if line:
            key, _, api_version = line.partition("\t")
            into[ObjectRef.from_key(key)] = api_version


class Inventory(Base):
    def _owner(self, workflow_id: str) -> tuple[str, list[dict[str, Any]]]:
        wf = self._seen.get(workflow_id) or self.workflow_obj(workflow_id)
        meta = wf["metadata"]
        ref = {"apiVersion": names.API_VERSION, "kind": "Workflow", "name": meta["name"], "uid": meta["uid"]}
        return str(meta["uid"]), [ref]

    def _read(self, uid: str) -> tuple[Obj | None, dict[ObjectRef, str]]:
        for _ in range(ATTEMPTS):
            head = self.kube.get(CONFIGMAPS, self.namespace, names.inventory_name(uid))
            out: dict[ObjectRef, str] = {}
            if head is None:
                return None, out
            _parse((head.get("data") or {}).get("refs", ""), out)
            parts = [p for p in ((head["metadata"].get("annotations") or {}).get(PARTS) or "").split(",") if p]
            complete = True
            for part in parts:
                obj = self.kube.get(CONFIGMAPS, self.namespace, part)
                if obj is None:
                    complete = False  # a writer replaced this generation as we read: read the new head
                    break
                _parse((obj.get("data") or {}).get("refs", ""), out)
            if complete:
                return head, out
        raise SlipwayError(f"the inventory {names.inventory_name(uid)} kept changing while it was read")

    def inventory(self, workflow_id: str) -> dict[ObjectRef, str]:
        uid = self.workflow_uid(workflow_id)
        return {} if uid is None else self._read(uid)[1]

    def add_inventory(self, workflow_id: str, entries: dict[ObjectRef, str]) -> None:
        """Remember objects as owned the moment they are applied, before the sync is recorded."""
        self._write(workflow_id, lambda current: {**current, **entries})

    def set_inventory(self, workflow_id: str, entries: dict[ObjectRef, str]) -> None:
        self._write(workflow_id, lambda current: dict(entries))

    def _write(self, workflow_id: str, change: Any) -> None:
        uid, owners = self._owner(workflow_id)
        head_name = names.inventory_name(uid)
        for _ in range(ATTEMPTS):
            head, current = self._read(uid)
            wanted = change(current)
            if head is not None and wanted == current:
                return
            texts = _split(_lines(wanted))
            generation = secrets.token_hex(4)
            parts = [f"{head_name}-{generation}-{i}" for i in range(1, len(texts))]
            for name, text in zip(parts, texts[1:], strict=True):
                self.kube.create(CONFIGMAPS, self._cm(name, uid, owners, text))
            obj = self._cm(head_name, uid, owners, texts[0])
            obj["metadata"]["annotations"] = {PARTS: ",".join(parts)}
            old_parts = [p for p in ((head or {}).get("metadata", {}).get("annotations", {}) or {}).get(PARTS, "")
                         .split(",") if p]  # fmt: skip
            try:
                if head is None:
                    self.kube.create(CONFIGMAPS, obj)
                else:
                    obj["metadata"]["resourceVersion"] = head["metadata"]["resourceVersion"]
                    self.kube.replace(CONFIGMAPS, obj)
            except (KubeConflict, KubeAlreadyExists):
                for name in parts:  # ours, never named by any head
                    self.kube.delete(CONFIGMAPS, self.namespace, name)
                continue
            for name in old_parts:
                self.kube.delete(CONFIGMAPS, self.namespace, name)
            return
        raise SlipwayError(f"workflow {workflow_id}: its inventory kept changing while it was written")

    def _cm(self, name: str, uid: str, owners: list[dict[str, Any]], text: str) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": names.managed(**{names.LABEL_RECORD: "inventory", names.LABEL_WORKFLOW_UID: uid}),
                "ownerReferences": owners,
            },
            "data": {"refs": text},
        }

    def forget_inventory(self, workflow_uid: str) -> None:
        selector = names.selector(**{names.LABEL_RECORD: "inventory", names.LABEL_WORKFLOW_UID: workflow_uid})
        for item in self.kube.list_metadata(CONFIGMAPS, self.namespace, label_selector=selector):
            self.kube.delete(CONFIGMAPS, self.namespace, item["metadata"]["name"])
