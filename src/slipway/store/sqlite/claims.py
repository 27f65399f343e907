"""One sync per workflow at a time, across processes: a claim on the workflow's row.

A sync or rollback claims its workflow with its owner (host, pid, process start time, so a
recycled pid is not mistaken for the owner). A claim whose owner is gone, and the sync it left
``running``, are marked ``interrupted`` the next time anyone opens the store or claims.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...durations import rfc3339
from ...errors import NotFoundError, SyncInProgress
from .base import Base, now

if TYPE_CHECKING:
    from ..protocol import ClaimLoss

_HOST = socket.gethostname()
INTERRUPTED = "interrupted: the process running it stopped before it finished"
UNLOCKED = "interrupted: its claim was released by `slipway workflow unlock` (its process was gone or unreachable)"


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def owner_id() -> str:
    """This process, as a claim owner: host, pid and start time (a recycled pid differs)."""
    return f"{_HOST}:{os.getpid()}:{_proc_start(os.getpid())}"


def owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    try:
        host, pid, start = owner.split(":", 2)
    except ValueError:
        return False
    if host != _HOST:
        return True  # another machine's process: we cannot tell, so we must not steal its claim
    return _proc_start(int(pid)) == start


class Claims(Base):
    def claim(self, workflow_id: str, sync_id: str, lost: ClaimLoss | None = None) -> None:
        """Claim the workflow for one sync or rollback; SyncInProgress when someone alive holds it.
        ``lost`` is never set here: the claim of a live process of this host is never taken from it."""
        me = owner_id()
        with self.tx() as c:
            row = c.execute("SELECT sync_owner, sync_id FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"workflow {workflow_id!r} does not exist")
            if row["sync_owner"] and owner_alive(row["sync_owner"]):
                pid = row["sync_owner"].split(":")[1]
                raise SyncInProgress(f"workflow {workflow_id}: sync in progress ({row['sync_id']}, pid {pid})")
            if row["sync_owner"]:
                self._interrupt(c, workflow_id, row["sync_id"])
            c.execute("UPDATE workflows SET sync_owner = ?, sync_id = ? WHERE id = ?", (me, sync_id, workflow_id))

    def release(self, workflow_id: str, sync_id: str) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE workflows SET sync_owner = NULL, sync_id = NULL WHERE id = ? AND sync_id = ?",
                (workflow_id, sync_id),
            )

    def unlock(self, workflow_id: str) -> dict[str, Any] | None:
        """Release the workflow's claim and record its sync interrupted, unless its holder is a live
        process of this host (SyncInProgress); the claim released, None when there was none."""
        with self.tx() as c:
            row = c.execute("SELECT sync_owner, sync_id FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"workflow {workflow_id!r} does not exist")
            owner = row["sync_owner"]
            if not owner:
                return None
            host, _, rest = str(owner).partition(":")
            holder = f"pid {rest.partition(':')[0] or '?'} of {host}"
            if host == _HOST and owner_alive(owner):
                raise SyncInProgress(f"workflow {workflow_id}: its claim's holder is alive ({row['sync_id']}, "
                                     f"{holder}); cancel that sync or stop that process instead")  # fmt: skip
            self._interrupt(c, workflow_id, row["sync_id"], UNLOCKED)
        return {"syncId": row["sync_id"], "owner": owner, "holder": holder}

    def _interrupt(
        self, c: sqlite3.Connection, workflow_id: str, sync_id: str | None, message: str = INTERRUPTED
    ) -> None:
        if sync_id:
            c.execute(
                "UPDATE syncs SET status = 'interrupted', end_time = ?, message = ? WHERE id = ? AND status = 'running'",
                (rfc3339(now()), message, sync_id),
            )
        c.execute(
            """UPDATE workflows SET sync_owner = NULL, sync_id = NULL, status = 'failed',
                 status_message = 'the last sync was interrupted' WHERE id = ?""",
            (workflow_id,),
        )

    def recover_interrupted(self) -> list[str]:
        """Mark syncs whose process died as interrupted; returns their ids."""
        conn = self._conn()
        stale = [
            (r["id"], r["sync_id"])
            for r in conn.execute("SELECT id, sync_owner, sync_id FROM workflows WHERE sync_owner IS NOT NULL")
            if not owner_alive(r["sync_owner"])
        ]
        orphans = [
            r["id"]
            for r in conn.execute("SELECT id, owner FROM syncs WHERE status = 'running'")
            if not owner_alive(r["owner"])
        ]
        if not stale and not orphans:
            return []
        with self.tx() as c:
            for workflow_id, sync_id in stale:
                row = c.execute("SELECT sync_owner FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
                if row and row["sync_owner"] and not owner_alive(row["sync_owner"]):
                    self._interrupt(c, workflow_id, sync_id)
            for sync_id in orphans:
                c.execute(
                    "UPDATE syncs SET status = 'interrupted', end_time = ?, message = ? "
                    "WHERE id = ? AND status = 'running'",
                    (rfc3339(now()), INTERRUPTED, sync_id),
                )
        return [s for _, s in stale if s] + orphans
