"""What replicas tell each other through the cluster: pushes, the syncs others run, dashboard sessions.

- **Pushes**: a webhook received by any server writes ``<repository>: <mark>`` into the ConfigMap
  ``slipway-pushes`` (one key per repository, a merge patch: writers never conflict); each
  controller replica reads that one object about once a second and checks at once the repositories
  whose mark moved (:mod:`slipway.pushes`).
- **Sync feed**: the records of syncs (Secrets labelled ``slipway.dev/record=sync``) followed by a
  one-second watch of their metadata from the last resourceVersion — only what changed, never a
  LIST of everything — so every server streams the syncs every other process runs.
- **Sessions**: one Secret per dashboard session, named by a hash of the session id (never the id),
  holding the token's id, name and role; its expiry and last use are annotations.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

from ...errors import KubeNotFound, NotFoundError, SlipwayError
from ...kube import Obj
from ...kube.client import KubeAlreadyExists
from ..sqlite.claims import owner_id
from . import names
from .base import Base, b64, log, unb64
from .names import CONFIGMAPS, SECRETS

PUSHES_CONFIGMAP = "slipway-pushes"
SESSION_TYPE = "slipway.dev/dashboard-session"
ANNOTATION_SEEN = "slipway.dev/seen-at"
ANNOTATION_EXPIRES = "slipway.dev/expires-at"
_RECORDS = names.selector(**{names.LABEL_RECORD: "sync"})
_FEED_SECONDS = 1


def _push_key(repo_id: str) -> str:
    return "r-" + hashlib.sha256(repo_id.encode()).hexdigest()[:24]  # a ConfigMap key, whatever the id


def session_name(key: str) -> str:
    return "slipway-session-" + key[:48]


class Replicas(Base):
    # -- pushes ----------------------------------------------------------------------------------------

    def note_push(self, repo_ids: list[str]) -> None:
        mark = f"{time.time():.3f}:{owner_id()}"
        data = {_push_key(r): json.dumps({"repository": r, "mark": mark}) for r in repo_ids}
        try:
            self.kube.patch_merge(CONFIGMAPS, self.namespace, PUSHES_CONFIGMAP, {"data": data})
        except KubeNotFound:
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                   "metadata": {"name": PUSHES_CONFIGMAP, "namespace": self.namespace, "labels": names.managed()}}  # fmt: skip
            try:
                self.kube.create(CONFIGMAPS, obj)
            except KubeAlreadyExists:
                self.kube.patch_merge(CONFIGMAPS, self.namespace, PUSHES_CONFIGMAP, {"data": data})

    def pushes(self) -> dict[str, str]:
        obj = self.kube.get(CONFIGMAPS, self.namespace, PUSHES_CONFIGMAP)
        out: dict[str, str] = {}
        for value in ((obj or {}).get("data") or {}).values():
            try:
                entry = json.loads(value)
                out[str(entry["repository"])] = str(entry["mark"])
            except (ValueError, KeyError, TypeError):
                continue  # written by hand: not ours to read
        return out

    # -- the feed of syncs run anywhere --------------------------------------------------------------

    def sync_feed(self, cursor: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        """``started`` and ``finished`` of the syncs other processes ran since ``cursor`` (None: from now).
        Blocks about a second (the watch) when nothing changes."""
        version, statuses = cursor if cursor is not None else (None, {})
        got = self.kube.changes(SECRETS, self.namespace, version, label_selector=_RECORDS, seconds=_FEED_SECONDS)
        if got is None:  # too old: the next call starts from now
            return [], (None, statuses)
        changes, version = got
        events: list[tuple[str, dict[str, Any]]] = []
        mine = owner_id()
        for kind, meta_obj in changes:
            meta = meta_obj.get("metadata") or {}
            name = str(meta.get("name") or "")
            if kind == "DELETED":
                statuses.pop(name, None)
                continue
            if (meta.get("annotations") or {}).get(names.ANNOTATION_OWNER) == mine:
                continue  # this process ran it: its own events are out already
            status = (meta.get("labels") or {}).get(names.LABEL_SYNC_STATUS)
            before = statuses.get(name)
            if status == before or (before is None and kind != "ADDED" and status == "running"):
                continue
            statuses[name] = status
            result = self._feed_record(name)
            if result is None:
                continue
            about = {"workflow": result.workflow_id, "sync_id": result.id, "kind": result.kind}
            if before is None and kind == "ADDED":
                events.append(("started", {**about, "trigger": result.trigger}))
            if status != "running":
                statuses.pop(name, None)
                events.append(("finished", {**about, "status": result.status, "message": result.message,
                                            "revision": result.commit_hash}))  # fmt: skip
        return events, (version, statuses)

    def _feed_record(self, name: str) -> Any:
        obj = self.kube.get(SECRETS, self.namespace, name)
        if obj is None:
            return None
        try:
            return self._read_record(obj)
        except (NotFoundError, SlipwayError):
            log.debug("sync feed: cannot read %s", name, exc_info=True)
            return None

    def _read_record(self, obj: Obj) -> Any:
        raise NotImplementedError  # Records

    # -- dashboard sessions ------------------------------------------------------------------------------

    def put_session(self, key: str, row: dict[str, Any]) -> None:
        obj: Obj = {
            "apiVersion": "v1", "kind": "Secret", "type": SESSION_TYPE,
            "metadata": {"name": session_name(key), "namespace": self.namespace,
                         "labels": names.managed(**{names.LABEL_RECORD: "session",
                                                    names.LABEL_TOKEN_ID: str(row["token_id"])}),
                         "annotations": {ANNOTATION_SEEN: repr(float(row["seen"])),
                                         ANNOTATION_EXPIRES: repr(float(row["expires"]))}},
            "data": {"session": b64(json.dumps({k: row[k] for k in ("token_id", "name", "role", "created")}).encode())},
        }  # fmt: skip
        self.kube.create(SECRETS, obj)

    def get_session(self, key: str) -> dict[str, Any] | None:
        obj = self.kube.get(SECRETS, self.namespace, session_name(key))
        if obj is None or obj.get("type") != SESSION_TYPE:
            return None
        annotations = obj["metadata"].get("annotations") or {}
        try:
            row = json.loads(unb64((obj.get("data") or {}).get("session", "")))
            return {**row, "seen": float(annotations[ANNOTATION_SEEN]),
                    "expires": float(annotations[ANNOTATION_EXPIRES])}  # fmt: skip
        except (ValueError, KeyError, TypeError):
            return None

    def touch_session(self, key: str, at: float) -> None:
        patch = {"metadata": {"annotations": {ANNOTATION_SEEN: repr(float(at))}}}
        with contextlib.suppress(KubeNotFound):  # ended meanwhile
            self.kube.patch_merge(SECRETS, self.namespace, session_name(key), patch)

    def delete_session(self, key: str) -> None:
        self.kube.delete(SECRETS, self.namespace, session_name(key))

    def expire_sessions(self, now: float, idle: float) -> int:
        """Delete the sessions past their lifetime or idle longer than ``idle`` seconds."""
        selector = names.selector(**{names.LABEL_RECORD: "session"})
        gone = 0
        for item in self.kube.list_metadata(SECRETS, self.namespace, label_selector=selector):
            meta = item["metadata"]
            annotations = meta.get("annotations") or {}
            try:
                ended = float(annotations[ANNOTATION_EXPIRES]) < now or now - float(annotations[ANNOTATION_SEEN]) > idle
            except (KeyError, ValueError):
                ended = True
            if ended:
                gone += bool(self.kube.delete(SECRETS, self.namespace, meta["name"]))
        return gone


__all__ = ["PUSHES_CONFIGMAP", "Replicas", "session_name"]
