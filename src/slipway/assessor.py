"""The controller's refresh of every workflow's sync status and health (:mod:`slipway.axes`).

Argo CD compares every application with Git every three minutes; so does this: one thread beside
the controller's loop, one workflow at a time (a plan each, nothing applied), recomputing what is
older than ``SLIPWAY_ASSESS_INTERVAL`` (default ``"3m"``; ``"0"`` turns it off) for the workflows
this replica owns, whether they auto-sync or not, and at once those of a repository whose branch
the controller saw move (a commit elsewhere in it then reads ``Synced``, not "behind Git"). Syncs and rollbacks compute theirs as they
finish, and ``workflow status``/``get`` or the API's workflow route whenever asked; lists and the
overview show the stored value with its age.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import axes
from .durations import parse_duration
from .errors import Cancelled, SlipwayError, describe

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("slipway.controller")

FIRST_PASS = 5.0  # seconds after start: a controller that starts and stops at once (tests, a CLI) does no plan


def interval() -> float:
    return parse_duration(os.environ.get("SLIPWAY_ASSESS_INTERVAL") or "3m", key="SLIPWAY_ASSESS_INTERVAL")


class Assessor:
    def __init__(self, engine: Engine, mine: Callable[[str], bool], cancel: threading.Event) -> None:
        self.engine, self.mine, self.cancel = engine, mine, cancel
        self.every = interval()
        self._thread: threading.Thread | None = None
        self._moved: dict[str, str] = {}  # repository -> the head it moved to: its workflows are due now
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def _heard(self, event: str, data: dict[str, Any]) -> None:
        if event == "repository" and data.get("repository") and data.get("revision"):
            with self._lock:
                self._moved[str(data["repository"])] = str(data["revision"])
            self._wake.set()

    def start(self) -> None:
        if self.every <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._thread = threading.Thread(target=self.run, name="slipway-assessor", daemon=True)
        self._thread.start()

    def run(self) -> None:
        unsubscribe = self.engine.events.subscribe(self._heard)
        try:
            if self.cancel.wait(FIRST_PASS):
                return
            while not self.cancel.is_set():
                self.once()
                self._wake.wait(min(self.every / 4, 30.0))
                self._wake.clear()
        finally:
            unsubscribe()

    def once(self) -> int:
        """Recompute what is due; how many were computed."""
        done = 0
        with self._lock:
            moved, self._moved = self._moved, {}
        try:
            workflows = self.engine.workflows()
        except SlipwayError as e:
            log.warning("sync status refresh: cannot list the workflows: %s", describe(e))
            return 0
        for wf in workflows:
            if self.cancel.is_set():
                break
            try:
                if not self.mine(wf.id) or self.engine.run_state(wf.id)["sync_owner"] is not None:
                    continue  # another replica's, or a sync is at it and computes them as it ends
                kept = self.engine.run_state(wf.id).get("assessment") or {}
                age = axes.age(kept.get("assessed_at"))
                head = moved.get(wf.repository)
                stale = head is not None and (kept.get("sync_status") or {}).get("revision") != head
                if age is not None and age < self.every and not stale:
                    continue
                self.engine.assess(wf.id, self.cancel)
                done += 1
            except Cancelled:
                break
            except SlipwayError as e:
                log.info("workflow %s: sync status and health not computed: %s", wf.id, describe(e))
        return done


__all__ = ["Assessor", "interval"]
