"""Connection plumbing the SQLite store's parts share: one connection per thread, WAL, one transaction per change."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ... import settings
from .. import crypto
from .schema import migrate


class Base:
    def __init__(self, path: Path | None = None, home: Path | None = None) -> None:
        self.home = home or settings.home()
        self.path = path or (self.home / "state.db")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.tx() as c:
            migrate(c)
        self._instance = str(self._conn().execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0])

    @property
    def instance_id(self) -> str:
        return self._instance

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # Deleted and overwritten content is zeroed, not left in free pages (an old plain-text URL).
            conn.execute("PRAGMA secure_delete=ON")
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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _seal(self, data: Any) -> bytes:
        return crypto.encrypt(self.home, json.dumps(data, separators=(",", ":")).encode())

    def _open(self, blob: bytes) -> Any:
        return json.loads(crypto.decrypt(self.home, blob))


def now() -> float:
    return time.time()
