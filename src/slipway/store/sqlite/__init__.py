"""The embedded state store: SQLite in WAL mode, every change in one transaction.

Split along its parts: :mod:`.schema` (migrations), :mod:`.config` (repositories, workflows and
their run state), :mod:`.claims` (one sync per workflow across processes) and :mod:`.records`
(syncs, the objects they applied and backed up, inventories), :mod:`.tokens` (API tokens, hashed),
:mod:`.replicas` (pushes, the feed of syncs, dashboard sessions: what processes on one file share).
Secrets are encrypted at rest.
"""

from __future__ import annotations

from pathlib import Path

from .claims import Claims, owner_alive, owner_id
from .config import Config
from .records import Records
from .replicas import ReplicaRows
from .tokens import TokenRows


class SqliteStore(Config, Claims, Records, TokenRows, ReplicaRows):
    def __init__(self, path: Path | None = None, home: Path | None = None) -> None:
        super().__init__(path, home)
        self.seal_url_credentials()
        self.recover_interrupted()


__all__ = ["SqliteStore", "owner_alive", "owner_id"]
