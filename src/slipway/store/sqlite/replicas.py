"""What processes sharing one state file tell each other: pushes, the syncs others run, sessions.

A ``slipway server --no-controller`` and a ``slipway controller`` on the same file: a webhook
writes a repository's push mark (:mod:`slipway.pushes` reads them about once a second); the
server's event stream follows the syncs the controller runs by their ``seq`` (and those still
running by id, until they finish); dashboard sessions are rows keyed by a hash of their id.
"""

from __future__ import annotations

import time
from typing import Any

from .base import Base
from .claims import owner_id

_FEED = "id, workflow_id, kind, status, trigger, message, commit_hash, owner, seq"


class ReplicaRows(Base):
    def note_push(self, repo_ids: list[str]) -> None:
        mark = f"{time.time():.3f}:{owner_id()}"
        with self.tx() as c:
            c.executemany(
                "INSERT INTO pushes (repository_id, mark) VALUES (?, ?) "
                "ON CONFLICT (repository_id) DO UPDATE SET mark = excluded.mark",
                [(r, mark) for r in repo_ids],
            )

    def pushes(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._conn().execute("SELECT repository_id, mark FROM pushes").fetchall()}

    def sync_feed(self, cursor: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        """``started`` and ``finished`` of the syncs other processes ran since ``cursor`` (None: from now)."""
        conn = self._conn()
        if cursor is None:
            return [], (conn.execute("SELECT COALESCE(MAX(seq), 0) FROM syncs").fetchone()[0], set())
        seq, running = cursor
        rows = conn.execute(f"SELECT {_FEED} FROM syncs WHERE seq > ? ORDER BY seq", (seq,)).fetchall()
        if running:
            marks = ",".join("?" * len(running))
            rows += conn.execute(f"SELECT {_FEED} FROM syncs WHERE id IN ({marks})", tuple(running)).fetchall()
        events: list[tuple[str, dict[str, Any]]] = []
        mine = owner_id()
        for row in rows:
            new = row["seq"] > seq
            if row["owner"] == mine:
                continue  # this process ran it: its own events are out already
            about = {"workflow": row["workflow_id"], "sync_id": row["id"], "kind": row["kind"]}
            if new:
                events.append(("started", {**about, "trigger": row["trigger"]}))
            if row["status"] == "running":
                running.add(row["id"])
            else:
                running.discard(row["id"])
                events.append(("finished", {**about, "status": row["status"], "message": row["message"],
                                            "revision": row["commit_hash"]}))  # fmt: skip
        top = max([seq, *(r["seq"] for r in rows)])
        return events, (top, running)

    def put_session(self, key: str, row: dict[str, Any]) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT INTO sessions (key, token_id, name, role, created, seen, expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, row["token_id"], row["name"], row["role"], row["created"], row["seen"], row["expires"]),
            )

    def get_session(self, key: str) -> dict[str, Any] | None:
        row = (
            self._conn()
            .execute("SELECT token_id, name, role, created, seen, expires FROM sessions WHERE key = ?", (key,))
            .fetchone()
        )
        return dict(row) if row is not None else None

    def touch_session(self, key: str, at: float) -> None:
        with self.tx() as c:
            c.execute("UPDATE sessions SET seen = ? WHERE key = ?", (at, key))

    def delete_session(self, key: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM sessions WHERE key = ?", (key,))

    def expire_sessions(self, now: float, idle: float) -> int:
        with self.tx() as c:
            return c.execute("DELETE FROM sessions WHERE expires < ? OR seen < ?", (now, now - idle)).rowcount
