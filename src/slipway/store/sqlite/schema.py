"""The SQLite schema, as forward-only migrations numbered by ``PRAGMA user_version``.

Tables: repositories (credentials encrypted), workflows (config as JSON plus run state), syncs
(every sync and rollback with its metrics, changes, hook output and health; ``removed_at`` set when
its workflow was removed, so the audit trail outlives it), sync_objects (the manifests a sync
declared and the backups it took, by content hash), blobs (those objects, encrypted, once per
content), inventory (the objects each workflow owns), executions (task runs, for the ``ai``
module), meta (the store's instance id) and tokens (API tokens, as a salt and an scrypt hash each;
a sync's ``actor`` names who asked for it), pushes (the last push a webhook saw of each repository,
for the controller process) and sessions (dashboard logins, by a hash of their id). A store opened by an older slipway is migrated on open.
"""

from __future__ import annotations

import secrets
import sqlite3

MIGRATIONS = [
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
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    ALTER TABLE syncs ADD COLUMN removed_at REAL;
    CREATE INDEX sync_objects_by_blob ON sync_objects (blob);
    """,
    # Helm chart repositories are registered beside Git ones (their credentials serve chart dependencies).
    "ALTER TABLE repositories ADD COLUMN type TEXT NOT NULL DEFAULT 'git'",
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        salt BLOB NOT NULL,
        hash BLOB NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT,
        last_used_at REAL
    );
    ALTER TABLE syncs ADD COLUMN actor TEXT;
    """,
    # What processes sharing the file tell each other: pushes a webhook saw, dashboard sessions.
    """
    CREATE TABLE pushes (
        repository_id TEXT PRIMARY KEY,
        mark TEXT NOT NULL
    );
    CREATE TABLE sessions (
        key TEXT PRIMARY KEY,
        token_id TEXT NOT NULL,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        created REAL NOT NULL,
        seen REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX syncs_by_seq ON syncs (seq);
    """,
    # The workflow's sync status and health as last computed (JSON, with when): lists show it with its age.
    "ALTER TABLE workflows ADD COLUMN assessment TEXT",
    # A chart repository's plain_http and ca_file, as JSON: settings a Git repository has none of.
    """
    ALTER TABLE repositories ADD COLUMN options TEXT NOT NULL DEFAULT '{}';
    """,
    # The commit a sync deployed, as the history shows it: subject and author.
    "ALTER TABLE syncs ADD COLUMN commit_message TEXT; ALTER TABLE syncs ADD COLUMN commit_author TEXT",
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date and make sure the store has an instance id (in the caller's transaction)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for i, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {i}")
    # 12 hex digits: short enough for a label value, and two stores never meet by chance.
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)", (secrets.token_hex(6),))
