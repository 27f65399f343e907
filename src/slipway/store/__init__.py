"""Persistent state behind one protocol (:class:`StateStore`): SQLite by default, chosen by ``SLIPWAY_STORE``.

Every front and the engine reach state only through the protocol's methods, so the second backend
(``kubernetes``: custom resources, Secrets and Leases in ``SLIPWAY_NAMESPACE``) plugs in without
them changing. Secrets are encrypted at rest in both.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .protocol import StateStore, SyncObject
from .sqlite import SqliteStore, owner_alive, owner_id

# The embedded default, under the name callers have always used.
Store = SqliteStore

BACKENDS = ("sqlite", "kubernetes")


def backend() -> str:
    return (os.environ.get("SLIPWAY_STORE") or "sqlite").strip().lower()


def open_store(home: Path | None = None) -> StateStore:
    """The store ``SLIPWAY_STORE`` names (default ``sqlite``)."""
    kind = backend()
    if kind == "sqlite":
        return SqliteStore(home=home)
    if kind == "kubernetes":
        from .kubernetes import KubernetesStore

        return KubernetesStore()
    raise ConfigError(f"SLIPWAY_STORE: {kind!r} is not one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "StateStore", "Store", "SyncObject", "backend", "open_store", "owner_alive", "owner_id"]
