"""Sync records: every sync and rollback, the objects each declared and backed up, and the inventory.

A sync is inserted ``running`` before its first stage and finished in one transaction that also
writes the workflow's new status and inventory, so a record is never half-written. Objects are
stored encrypted (they may be Secrets) and once per content: a thousand unchanged manifests cost
a thousand small rows per sync, not a thousand copies. A workflow keeps its last
``history_limit`` syncs; older ones go with their objects, and blobs nobody refers to any more.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict
from typing import Any

from ...errors import NotFoundError
from ...kube.objects import ObjectRef
from ...results import SyncMetrics, SyncResult
from ..protocol import SyncObject
from .base import Base, now
from .claims import owner_id


class Records(Base):
    def start_sync(self, result: SyncResult) -> None:
        with self.tx() as c:
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM syncs").fetchone()[0]
            c.execute(
                """INSERT INTO syncs (id, workflow_id, kind, status, trigger, start_time, commit_hash, from_revision,
                     message, reason, target_sync_id, owner, seq, actor, commit_message, commit_author)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    result.id, result.workflow_id, result.kind, result.status, result.trigger, result.start_time,
                    result.commit_hash, result.from_revision, result.message, result.reason, result.target_sync_id,
                    owner_id(), seq, result.actor, result.commit_message, result.commit_author,
                ),
            )  # fmt: skip
            c.execute(
                "UPDATE workflows SET status = 'syncing', status_message = ? WHERE id = ?",
                (f"{result.kind} {result.id} running", result.workflow_id),
            )

    def update_sync(self, result: SyncResult) -> None:
        """Save a running sync's progress (commit, changes) without finishing it."""
        with self.tx() as c:
            c.execute(
                """UPDATE syncs SET commit_hash = ?, message = ?, changes = ?, commit_message = ?, commit_author = ?
                   WHERE id = ?""",
                (
                    result.commit_hash,
                    result.message,
                    json.dumps(result.changes),
                    result.commit_message,
                    result.commit_author,
                    result.id,
                ),
            )

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
        """Record the outcome, the workflow's new status and the objects it now owns, atomically."""
        with self.tx() as c:
            c.execute(
                """UPDATE syncs SET status = ?, end_time = ?, commit_hash = ?, message = ?, metrics = ?,
                     changes = ?, hooks = ?, health = ?, target_sync_id = ?, rolled_back = ?,
                     commit_message = ?, commit_author = ?
                   WHERE id = ?""",
                (
                    result.status, result.end_time, result.commit_hash, result.message,
                    json.dumps(asdict(result.metrics)), json.dumps(result.changes), json.dumps(result.hooks),
                    json.dumps(result.health), result.target_sync_id, int(result.rolled_back),
                    result.commit_message, result.commit_author, result.id,
                ),
            )  # fmt: skip
            sets = "status = ?, status_message = ?"
            args: list[Any] = [workflow_status, status_message]
            if result.kind == "sync":
                sets += ", last_sync_id = ?"
                args.append(result.id)
            if applied_revision is not None:
                sets += ", applied_revision = ?"
                args.append(applied_revision)
            if hold_revision is not False:
                sets += ", hold_revision = ?"
                args.append(hold_revision)
            c.execute(f"UPDATE workflows SET {sets} WHERE id = ?", (*args, result.workflow_id))
            if inventory is not None:
                c.execute("DELETE FROM inventory WHERE workflow_id = ?", (result.workflow_id,))
                c.executemany(
                    "INSERT INTO inventory (workflow_id, ref, api_version) VALUES (?, ?, ?)",
                    [(result.workflow_id, ref.key(), v) for ref, v in inventory.items()],
                )
            for sync_id in mark_rolled_back:
                c.execute("UPDATE syncs SET rolled_back = 1 WHERE id = ?", (sync_id,))
            if history_limit:
                self._trim(c, result.workflow_id, history_limit)

    def _trim(self, c: sqlite3.Connection, workflow_id: str, keep: int) -> None:
        # Resource actions are kept apart from syncs and rollbacks: a burst of restarts never pushes
        # out the syncs a rollback goes back to.
        old = [
            r[0]
            for actions in (0, 1)
            for r in c.execute(
                """SELECT id FROM syncs WHERE workflow_id = ? AND removed_at IS NULL AND status != 'running'
                   AND (kind = 'action') = ? ORDER BY seq DESC LIMIT -1 OFFSET ?""",
                (workflow_id, actions, keep),
            )
        ]
        for i in range(0, len(old), 500):
            chunk = old[i : i + 500]
            marks = ",".join("?" * len(chunk))
            blobs = [
                r[0] for r in c.execute(f"SELECT DISTINCT blob FROM sync_objects WHERE sync_id IN ({marks})", chunk)
            ]
            c.execute(f"DELETE FROM sync_objects WHERE sync_id IN ({marks})", chunk)
            c.execute(f"DELETE FROM syncs WHERE id IN ({marks})", chunk)
            for j in range(0, len(blobs), 500):
                part = [b for b in blobs[j : j + 500] if b is not None]
                if part:
                    c.execute(
                        f"""DELETE FROM blobs WHERE hash IN ({",".join("?" * len(part))})
                            AND NOT EXISTS (SELECT 1 FROM sync_objects o WHERE o.blob = blobs.hash)""",
                        part,
                    )

    def add_inventory(self, workflow_id: str, entries: dict[ObjectRef, str]) -> None:
        """Remember objects as owned the moment they are applied, before the sync is recorded."""
        with self.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO inventory (workflow_id, ref, api_version) VALUES (?, ?, ?)",
                [(workflow_id, ref.key(), v) for ref, v in entries.items()],
            )

    def inventory(self, workflow_id: str) -> dict[ObjectRef, str]:
        rows = self._conn().execute("SELECT ref, api_version FROM inventory WHERE workflow_id = ?", (workflow_id,))
        return {ObjectRef.from_key(r["ref"]): r["api_version"] for r in rows}

    def put_sync_objects(self, sync_id: str, role: str, objects: list[SyncObject]) -> None:
        """Store (ref, apiVersion, action, object) rows for a sync, each object encrypted, once per content."""
        rows, blobs = [], {}
        for ref, api_version, action, obj in objects:
            digest = None
            if obj is not None:
                text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
                digest = hashlib.sha256(text.encode()).hexdigest()
                blobs[digest] = obj
            rows.append((sync_id, role, ref.key(), api_version, action, digest))
        with self.tx() as c:
            known: set[str] = set()
            digests = list(blobs)
            for i in range(0, len(digests), 500):
                chunk = digests[i : i + 500]
                marks = ",".join("?" * len(chunk))
                known.update(r[0] for r in c.execute(f"SELECT hash FROM blobs WHERE hash IN ({marks})", chunk))
            c.executemany(
                "INSERT INTO blobs (hash, payload) VALUES (?, ?)",
                [(h, self._seal(o)) for h, o in blobs.items() if h not in known],
            )
            c.executemany(
                """INSERT OR REPLACE INTO sync_objects (sync_id, role, ref, api_version, action, blob)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                rows,
            )

    def sync_objects(self, sync_id: str, role: str) -> list[SyncObject]:
        rows = self._conn().execute(
            """SELECT o.ref, o.api_version, o.action, b.payload FROM sync_objects o
               LEFT JOIN blobs b ON b.hash = o.blob WHERE o.sync_id = ? AND o.role = ?""",
            (sync_id, role),
        )
        return [
            (ObjectRef.from_key(r["ref"]), r["api_version"], r["action"],
             self._open(r["payload"]) if r["payload"] is not None else None)
            for r in rows
        ]  # fmt: skip

    def _sync(self, row: sqlite3.Row) -> SyncResult:
        return SyncResult(
            id=row["id"],
            workflow_id=row["workflow_id"],
            status=row["status"],
            start_time=row["start_time"],
            commit_hash=row["commit_hash"],
            message=row["message"],
            metrics=SyncMetrics(**json.loads(row["metrics"] or "{}")),
            kind=row["kind"],
            end_time=row["end_time"],
            trigger=row["trigger"],
            changes=json.loads(row["changes"]),
            hooks=json.loads(row["hooks"]),
            health=json.loads(row["health"]),
            rolled_back=bool(row["rolled_back"]),
            reason=row["reason"],
            target_sync_id=row["target_sync_id"],
            from_revision=row["from_revision"],
            actor=row["actor"],
            commit_message=row["commit_message"],
            commit_author=row["commit_author"],
        )

    def get_sync(self, sync_id: str) -> SyncResult:
        row = self._conn().execute("SELECT * FROM syncs WHERE id = ?", (sync_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"sync {sync_id!r} does not exist")
        return self._sync(row)

    def history(
        self, workflow_id: str, limit: int | None = None, kind: str | None = None, *, removed: bool = False
    ) -> list[SyncResult]:
        """Newest first; ``removed``: the history a removed workflow of that id left."""
        sql = "SELECT * FROM syncs WHERE workflow_id = ? AND removed_at IS " + ("NOT NULL" if removed else "NULL")
        args: list[Any] = [workflow_id]
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        sql += " ORDER BY seq DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [self._sync(r) for r in self._conn().execute(sql, args)]

    # -- executions (the ai module) ------------------------------------------------------------------

    def record_execution(
        self, task_name: str, command: str, success: bool, duration: float | None, message: str, details: Any
    ) -> None:
        with self.tx() as c:
            c.execute(
                """INSERT INTO executions (task_name, command, success, duration, message, details, at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (task_name, command, int(success), duration, message, json.dumps(details, default=str), now()),
            )

    def executions(self, task_name: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT * FROM executions WHERE task_name = ? ORDER BY at DESC, id DESC LIMIT ?",
            (task_name, limit),
        )
        return [dict(r) for r in rows]
