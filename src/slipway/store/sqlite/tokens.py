"""API tokens: a row per token with its role, a random salt and the scrypt hash of its secret.

The token itself is never stored (see :mod:`slipway.tokens`); revoking deletes the row, so the
next request with that token finds nothing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...errors import ConfigError
from .base import Base

_COLUMNS = "id, name, role, salt, hash, created_at, created_by, last_used_at"


class TokenRows(Base):
    def put_token(self, token: dict[str, Any]) -> None:
        with self.tx() as c:
            if c.execute("SELECT 1 FROM tokens WHERE name = ?", (token["name"],)).fetchone() is not None:
                raise ConfigError(
                    f"token {token['name']!r} already exists; revoke it first (`slipway token revoke {token['name']}`)"
                )
            c.execute(
                f"INSERT INTO tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(token[k] for k in _COLUMNS.split(", ")),
            )

    def get_token(self, token_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,)).fetchone()
        return _row(row) if row is not None else None

    def list_tokens(self) -> list[dict[str, Any]]:
        rows = self._conn().execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY created_at, name").fetchall()
        return [_row(r) for r in rows]

    def delete_token(self, name: str) -> bool:
        with self.tx() as c:
            return c.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount > 0

    def touch_token(self, token_id: str, at: float) -> None:
        with self.tx() as c:
            c.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (at, token_id))


def _row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["salt"], out["hash"] = bytes(out["salt"]), bytes(out["hash"])
    return out
