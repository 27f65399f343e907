"""Repositories and workflows: their configuration and each workflow's run state."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ...errors import ConfigError, NotFoundError, SyncInProgress
from ...model import Credentials, Repository, Workflow
from ...urls import UrlError, split_url
from .base import Base, now
from .claims import owner_alive


class Config(Base):
    def seal_url_credentials(self) -> int:
        """Repositories stored before URLs were split keep a token in their URL: move it into the
        sealed credentials (the URL keeps no secret); returns how many were rewritten."""
        rows = self._conn().execute("SELECT id, url, credentials FROM repositories WHERE url LIKE '%://%@%'").fetchall()
        fixed = 0
        for row in rows:
            try:
                parts = split_url(row["url"])
            except UrlError:
                continue  # a query-string token: shown redacted; registering it again is the way out
            if parts.username is None:
                continue
            creds = row["credentials"]
            if creds is None:
                creds = self._seal(Credentials.from_url(parts).to_dict())
            with self.tx() as c:
                c.execute("UPDATE repositories SET url = ?, credentials = ? WHERE id = ? AND url = ?",
                          (parts.url, creds, row["id"], row["url"]))  # fmt: skip
            fixed += 1
        return fixed

    # -- repositories ------------------------------------------------------------------------------

    def put_repository(self, repo: Repository) -> None:
        creds = self._seal(repo.credentials.to_dict()) if repo.credentials else None
        options = {k: v for k, v in (("plain_http", repo.plain_http), ("ca_file", repo.ca_file)) if v}
        t = now()
        with self.tx() as c:
            c.execute(
                """INSERT INTO repositories (id, url, branch, poll_interval, credentials, created_at, updated_at, type,
                                            options)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET url=excluded.url, branch=excluded.branch,
                     poll_interval=excluded.poll_interval, credentials=excluded.credentials,
                     updated_at=excluded.updated_at, type=excluded.type, options=excluded.options""",
                (repo.id, repo.url, repo.branch, repo.poll_interval, creds, t, t, repo.type, json.dumps(options)),
            )

    def _repo(self, row: sqlite3.Row) -> Repository:
        creds = None
        if row["credentials"] is not None:
            creds = Credentials(**self._open(row["credentials"]))
        options = json.loads(row["options"] or "{}")
        return Repository(row["id"], row["url"], row["branch"], row["poll_interval"], creds, row["type"],
                          bool(options.get("plain_http")), options.get("ca_file"))  # fmt: skip

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
        t = now()
        with self.tx() as c:
            if c.execute("SELECT 1 FROM repositories WHERE id = ?", (wf.repository,)).fetchone() is None:
                raise NotFoundError(f"workflow {wf.id}: repository {wf.repository!r} is not registered")
            c.execute(
                """INSERT INTO workflows (id, repository_id, config, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT(id) DO UPDATE SET repository_id=excluded.repository_id,
                     config=excluded.config, updated_at=excluded.updated_at""",
                (wf.id, wf.repository, json.dumps(self._sealed(wf.to_config())), t, t),
            )

    def get_workflow(self, workflow_id: str) -> Workflow:
        row = self._conn().execute("SELECT config FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        return Workflow.from_record(self._unsealed(json.loads(row["config"])))

    def list_workflows(self) -> list[Workflow]:
        rows = self._conn().execute("SELECT config FROM workflows ORDER BY created_at, id").fetchall()
        return [Workflow.from_record(self._unsealed(json.loads(r["config"]))) for r in rows]

    # A notification URL may hold a token, decryption keys are private keys: kept encrypted inside the config.
    def _sealed(self, config: dict[str, Any]) -> dict[str, Any]:
        notify = config.get("notify")
        if notify and notify.get("url"):
            sealed = self._seal(notify["url"]).decode()
            config = {**config, "notify": {**{k: v for k, v in notify.items() if k != "url"}, "sealed_url": sealed}}
        decryption = config.get("decryption")  # SOPS private keys: sealed like credentials
        if decryption and decryption.get("keys"):
            sealed = self._seal(decryption["keys"]).decode()
            rest = {k: v for k, v in decryption.items() if k != "keys"}
            config = {**config, "decryption": {**rest, "sealed_keys": sealed}}
        return config

    def _unsealed(self, config: dict[str, Any]) -> dict[str, Any]:
        notify = config.get("notify")
        if notify and "sealed_url" in notify:
            url = self._open(notify["sealed_url"].encode())
            config["notify"] = {**{k: v for k, v in notify.items() if k != "sealed_url"}, "url": url}
        decryption = config.get("decryption")
        if decryption and "sealed_keys" in decryption:
            keys = self._open(decryption["sealed_keys"].encode())
            config["decryption"] = {**{k: v for k, v in decryption.items() if k != "sealed_keys"}, "keys": keys}
        return config

    def config_version(self) -> tuple[Any, ...]:
        row = (
            self._conn()
            .execute(
                """SELECT (SELECT COUNT(*) FROM workflows), (SELECT MAX(updated_at) FROM workflows),
                      (SELECT COUNT(*) FROM repositories), (SELECT MAX(updated_at) FROM repositories)"""
            )
            .fetchone()
        )
        return tuple(row)

    def remove_workflow(self, workflow_id: str) -> None:
        with self.tx() as c:
            row = c.execute("SELECT sync_owner FROM workflows WHERE id = ?", (workflow_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"workflow {workflow_id!r} does not exist")
            if owner_alive(row["sync_owner"]):
                raise SyncInProgress(f"workflow {workflow_id} is syncing; remove it when the sync ends")
            c.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))
            c.execute("DELETE FROM inventory WHERE workflow_id = ?", (workflow_id,))
            # The audit trail outlives the workflow; a new workflow of the same id starts afresh.
            c.execute(
                "UPDATE syncs SET removed_at = ? WHERE workflow_id = ? AND removed_at IS NULL", (now(), workflow_id)
            )

    def workflow_state(self, workflow_id: str) -> dict[str, Any]:
        row = (
            self._conn()
            .execute(
                """SELECT status, status_message, hold_revision, applied_revision, last_sync_id, sync_owner, sync_id,
                          assessment FROM workflows WHERE id = ?""",
                (workflow_id,),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"workflow {workflow_id!r} does not exist")
        out = dict(row)
        out["assessment"] = json.loads(out["assessment"]) if out["assessment"] else None
        return out

    def set_workflow_state(self, workflow_id: str, **fields: Any) -> None:
        allowed = {"status", "status_message", "hold_revision", "applied_revision", "last_sync_id", "assessment"}
        assert set(fields) <= allowed, fields
        if fields.get("assessment") is not None:
            fields["assessment"] = json.dumps(fields["assessment"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as c:
            c.execute(f"UPDATE workflows SET {sets} WHERE id = ?", (*fields.values(), workflow_id))
