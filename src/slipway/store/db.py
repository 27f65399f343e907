"""The state store: SQLite in WAL mode, every change in one transaction.

Tables: repositories (credentials encrypted), workflows (config as JSON plus run state), syncs
(every sync and rollback with its metrics, changes, hook output and health), sync_objects (the
desired manifests a sync applied and the live objects it backed up, encrypted), inventory (the
objects each workflow owns) and executions (task runs, for the ``ai`` module). The schema is
versioned with ``PRAGMA user_version`` and migrated forward on open.

One sync per workflow at a time across processes: a sync claims its workflow row with its
owner (host, pid, process start time). A claim whose owner is gone, and the sync it left
``running``, are marked ``interrupted`` the next time anyone opens the store or claims.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import ConfigError, NotFoundError, SyncInProgress
from ..kube.objects import ObjectRef
from ..model import Credentials, Repository, SyncMetrics, SyncResult, Workflow
from . import crypto

_MIGRATIONS = [
    """
    CREATE TABLE repositories (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        branch TEXT NOT NULL,
        poll_interval TEXT NOT NULL,
        credentials BLOB,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE workflows (
        id TEXT PRIMARY KEY,
        repository_id TEXT NOT NULL REFERENCES repositories(id),
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active',
        status_message TEXT NOT NULL DEFAULT '',
        hold_revision TEXT,
        applied_revision TEXT,
        last_sync_id TEXT,
        sync_owner TEXT,
        sync_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE syncs (
        id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        trigger TEXT NOT NULL,
        start_time TEXT NOT NULL,
        end_time TEXT,
        commit_hash TEXT,
        from_revision TEXT,
        message TEXT NOT NULL DEFAULT '',
        reason TEXT,
        target_sync_id TEXT,
        rolled_back INTEGER NOT NULL DEFAULT 0,
        metrics TEXT NOT NULL DEFAULT '{}',
        changes TEXT NOT NULL DEFAULT '[]',
        hooks TEXT NOT NULL DEFAULT '[]',
        health TEXT NOT NULL DEFAULT '[]',
        owner TEXT,
        seq INTEGER NOT NULL
    );
    CREATE INDEX syncs_by_workflow ON syncs (workflow_id, seq);
    CREATE TABLE sync_objects (
        sync_id TEXT NOT NULL,
        role TEXT NOT NULL,
        ref TEXT NOT NULL,
        api_version TEXT NOT NULL,
        action TEXT NOT NULL,
        blob TEXT,
        PRIMARY KEY (sync_id, role, ref)
    );
    CREATE TABLE blobs (
        hash TEXT PRIMARY KEY,
        payload BLOB NOT NULL
    );
    CREATE TABLE inventory (
        workflow_id TEXT NOT NULL,
        ref TEXT NOT NULL,
        api_version TEXT NOT NULL,
        PRIMARY KEY (workflow_id, ref)
    );
    CREATE TABLE executions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_name TEXT NOT NULL,
        command TEXT NOT NULL DEFAULT '',
        success INTEGER NOT NULL,
        duration REAL,
        message TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}',
        at REAL NOT NULL
    );
    CREATE INDEX executions_by_task ON executions (task_name, at);
    """,
    # Helm chart repositories are registered beside Git ones (their credentials serve chart dependencies).
    "ALTER TABLE repositories ADD COLUMN type TEXT NOT NULL DEFAULT 'git'",
]

_HOST = socket.gethostname()


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def owner_id() -> str:
    """This process, as a claim owner: host, pid and start time (a recycled pid differs)."""
    import os

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


def _now() -> float:
    return time.time()


class Store:
    def __init__(self, path: Path | None = None, home: Path | None = None) -> None:
        self.home = home or settings.home()
        self.path = path or (self.home / "state.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()
        self.recover_interrupted()

    # -- plumbing ----------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it lands, or none of it."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _migrate(self) -> None:
        conn = self._conn()
        with self.tx():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for i, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {i}")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _seal(self, data: Any) -> bytes:
        return crypto.encrypt(self.home, json.dumps(data, separators=(",", ":")).encode())

    def _open(self, blob: bytes) -> Any:
        return json.loads(crypto.decrypt(self.home, blob))

    # -- repositories ------------------------------------------------------------------------------

    def put_repository(self, repo: Repository) -> None:
        creds = self._seal(repo.credentials.to_dict()) if repo.credentials else None
        now = _now()
        with self.tx() as c:
            c.execute(
                """INSERT INTO repositories (id, url, branch, poll_interval, credentials, created_at, updated_at, type)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET url=excluded.url, branch=excluded.branch,
                     poll_interval=excluded.poll_interval, credentials=excluded.credentials,
                     updated_at=excluded.updated_at, type=excluded.type""",
                (repo.id, repo.url, repo.branch, repo.poll_interval, creds, now, now, repo.type),
            )

    def _repo(self, row: sqlite3.Row) -> Repository:
        creds = None
        if row["credentials"] is not None:
            creds = Credentials(**self._open(row["credentials"]))
        return Repository(row["id"], row["url"], row["branch"], row["poll_interval"], creds, row["type"])

    def get_repository(self, repo_id: str) -> Repository:
        row = self._conn().execute("SELECT * FROM repositories WHERE id = ?", (repo_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"repository {repo_id!r} is not registered")
        return self._repo(row)

    def list_repositories(self) -> list[Repository]:
        rows = self._conn().execute("SELECT * FROM repositories ORDER BY created_at, id").fetchall()
        return [self._repo(r) for r in rows]

    def delete_repository(self, repo_id: str) -> None:
        with self.tx() as c:
            users = [r[0] for r in c.execute("SELECT id FROM workflows WHERE repository_id = ?", (repo_id,))]
            if users:
                raise ConfigError(
                    f"repository {repo_id!r} is used by workflow(s) {', '.join(users)}; remove them first"
                )
            if c.execute("DELETE FROM repositories WHERE id = ?", (repo_id,)).rowcount == 0:
                raise NotFoundError(f"repository {repo_id!r} is not registered")

    # -- workflows ---------------------------------------------------------------------------------

    def put_workflow(self, wf: Workflow) -> None:
        now = _now()
        with self.tx() as c:
            if c.execute("SELECT 1 FROM repositories WHERE id = ?", (wf.repository,)).fetchone() is None:
                raise NotFoundError(f"workflow {wf.id}: repository {wf.repository!r} is not registered")
            c.execute(
                """INSERT INTO workflows (id, repository_id, config, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET repository_id=excluded.repository_id,
                     config=excluded.config, updated_at=excluded.updated_at""",
                (wf.id, wf.repository, json.dumps(wf.to_config()), now, now),
            )

    def get_workflow(self, workflow_id: str) -> Workflow:
        row = self._conn().execute("SELECT config FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return _workflow(json.loads(row["config"]))

    def list_workflows(self) -> list[Workflow]:
        rows = self._conn().execute("SELECT config FROM workflows ORDER BY created_at, id").fetchall()
        return [_workflow(json.loads(r["config"])) for r in rows]

    def config_version(self) -> tuple[Any, ...]:
        """Changes whenever a repository or workflow is added, updated or removed (not on syncs)."""
        row = (
            self._conn()
            .execute(
                """SELECT (SELECT COUNT(*) FROM workflows), (SELECT MAX(updated_at) FROM workflows),
                      (SELECT COUNT(*) FROM repositories), (SELECT MAX(updated_at) FROM repositories)"""
            )
            .fetchone()
        )
        return tuple(row)

    def delete_workflow(self, workflow_id: str) -> None:
        with self.tx() as c:
            row = c.execute("SELECT sync_owner FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"workflow {workflow_id!r} does not exist")
            if owner_alive(row["sync_owner"]):
                raise SyncInProgress(f"workflow {workflow_id} is syncing; remove it when the sync ends")
            c.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))
            c.execute("DELETE FROM inventory WHERE workflow_id = ?", (workflow_id,))

    def workflow_state(self, workflow_id: str) -> dict[str, Any]:
        row = (
            self._conn()
            .execute(
                """SELECT status, status_message, hold_revision, applied_revision, last_sync_id, sync_owner, sync_id
               FROM workflows WHERE id = ?""",
                (workflow_id,),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return dict(row)

    def set_workflow_state(self, workflow_id: str, **fields: Any) -> None:
        allowed = {"status", "status_message", "hold_revision", "applied_revision", "last_sync_id"}
        assert set(fields) <= allowed, fields
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as c:
            c.execute(f"UPDATE workflows SET {sets} WHERE id = ?", (*fields.values(), workflow_id))

    # -- the one-sync-per-workflow claim -------------------------------------------------------------

    def claim(self, workflow_id: str, sync_id: str) -> None:
        """Claim the workflow for one sync or rollback; SyncInProgress when someone alive holds it."""
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

    def _interrupt(self, c: sqlite3.Connection, workflow_id: str, sync_id: str | None) -> None:
        if sync_id:
            c.execute(
                """UPDATE syncs SET status = 'interrupted', end_time = ?,
                     message = 'interrupted: the process running it stopped before it finished'
                   WHERE id = ? AND status = 'running'""",
                (_iso(_now()), sync_id),
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
                    """UPDATE syncs SET status = 'interrupted', end_time = ?,
                         message = 'interrupted: the process running it stopped before it finished'
                       WHERE id = ? AND status = 'running'""",
                    (_iso(_now()), sync_id),
                )
        return [s for _, s in stale if s] + orphans

    # -- syncs and rollbacks -------------------------------------------------------------------------

    def start_sync(self, result: SyncResult) -> None:
        with self.tx() as c:
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM syncs").fetchone()[0]
            c.execute(
                """INSERT INTO syncs (id, workflow_id, kind, status, trigger, start_time, commit_hash, from_revision,
                     message, reason, target_sync_id, owner, seq)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    result.id, result.workflow_id, result.kind, result.status, result.trigger, result.start_time,
                    result.commit_hash, result.from_revision, result.message, result.reason, result.target_sync_id,
                    owner_id(), seq,
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
                "UPDATE syncs SET commit_hash = ?, message = ?, changes = ? WHERE id = ?",
                (result.commit_hash, result.message, json.dumps(result.changes), result.id),
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
    ) -> None:
        """Record the outcome, the workflow's new status and the objects it now owns, atomically."""
        with self.tx() as c:
            c.execute(
                """UPDATE syncs SET status = ?, end_time = ?, commit_hash = ?, message = ?, metrics = ?,
                     changes = ?, hooks = ?, health = ?, target_sync_id = ?
                   WHERE id = ?""",
                (
                    result.status, result.end_time, result.commit_hash, result.message,
                    json.dumps(asdict(result.metrics)), json.dumps(result.changes), json.dumps(result.hooks),
                    json.dumps(result.health), result.target_sync_id, result.id,
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

    def put_sync_objects(self, sync_id: str, role: str, objects: list[tuple[ObjectRef, str, str, Any]]) -> None:
        """Store (ref, apiVersion, action, object) rows for a sync.

        Objects are kept encrypted (they may be Secrets) and once per content, so a thousand
        unchanged manifests cost a thousand small rows per sync, not a thousand copies.
        """
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

    def sync_objects(self, sync_id: str, role: str) -> list[tuple[ObjectRef, str, str, Any]]:
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
        )

    def get_sync(self, sync_id: str) -> SyncResult:
        row = self._conn().execute("SELECT * FROM syncs WHERE id = ?", (sync_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"sync {sync_id!r} does not exist")
        return self._sync(row)

    def history(self, workflow_id: str, limit: int | None = None, kind: str | None = None) -> list[SyncResult]:
        """Newest first."""
        sql = "SELECT * FROM syncs WHERE workflow_id = ?"
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
                (
                    task_name,
                    command,
                    int(success),
                    duration,
                    message,
                    json.dumps(details, default=str),
                    _now(),
                ),
            )

    def executions(self, task_name: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT * FROM executions WHERE task_name = ? ORDER BY at DESC, id DESC LIMIT ?",
            (task_name, limit),
        )
        return [dict(r) for r in rows]


def _workflow(cfg: dict[str, Any]) -> Workflow:
    from ..model import Destination, HealthCheck, RetryPolicy, SyncPolicy

    sp = dict(cfg["sync_policy"])
    sp["retry"] = RetryPolicy(**sp["retry"])
    sp["health_check"] = HealthCheck(**sp["health_check"])
    cfg = {**cfg, "sync_policy": SyncPolicy(**sp), "destination": Destination(**cfg["destination"])}
    return Workflow(**cfg)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
