"""Pushes a webhook noted in the store, for the controller replica that owns the repository.

A server replica that receives a push (``slipway server --no-controller``, or one whose
controller does not hold the repository's shards) cannot check the branch itself: it moves the
repository's push mark in the store (:meth:`StateStore.note_push`). Every controller reads the
marks about once a second — one small read, however many repositories — and asks for an
immediate check of those whose mark moved; the tick then checks only the repositories with
workflows in its own shards, so exactly the owner looks. A mark this very process wrote was
handled in-process already (:meth:`Controller.check_now`) and is skipped.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .errors import SlipwayError, describe
from .store.sqlite.claims import owner_id

if TYPE_CHECKING:
    from .store import StateStore
    from .store.protocol import SessionRows

log = logging.getLogger("slipway.controller")


class PushMarks:
    def __init__(self, store: StateStore, every: float = 1.0) -> None:
        self.store = store
        self.every = every
        self._seen: dict[str, str] | None = None
        self._next = 0.0
        self._me = owner_id()

    def moved(self) -> list[str]:
        """Repositories pushed to since the last look (nothing at the first: every one is checked at start)."""
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + self.every
        try:
            marks = self.store.pushes()
        except SlipwayError as e:
            log.warning("cannot read the pushes webhooks noted: %s", describe(e))
            return []
        seen, self._seen = self._seen, marks
        if seen is None:
            return []
        return [r for r, mark in marks.items() if seen.get(r) != mark and not mark.endswith(f":{self._me}")]


class Replicas:
    """What processes sharing a store tell each other, as the fronts reach it (``engine.replicas``):
    pushes a webhook saw, the syncs other processes ran, dashboard sessions."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def note_push(self, repo_ids: list[str]) -> None:
        self._store.note_push(repo_ids)

    def push_marks(self) -> PushMarks:
        return PushMarks(self._store)

    def sync_feed(self, cursor: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        return self._store.sync_feed(cursor)

    def session_rows(self) -> SessionRows:
        return self._store


__all__ = ["PushMarks", "Replicas"]
