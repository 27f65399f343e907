"""Persistent state: SQLite with WAL and transactions; secrets encrypted at rest."""

from .db import Store, owner_alive, owner_id

__all__ = ["Store", "owner_alive", "owner_id"]
