"""The engine's events: what fronts that watch (the server's event stream, metrics) subscribe to.

Every sync, rollback and removal publishes ``started``, its progress (``planned`` with how many
objects it will write, ``stage``, ``applied``, ``deleted``, ``hook``, ``health``, ``wave``...) and
``finished``, each naming the workflow and the sync; the controller publishes ``repository`` when a
branch moves, ``check`` after each look at a branch (with its duration, and its error) and
``status`` when it marks a workflow degraded or recovered. A subscriber is called in the
thread that publishes and must return quickly; one that raises is logged and dropped, so a broken
watcher never breaks a sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("slipway.events")

Listener = Callable[[str, dict[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, data)`` for every event from now on; returns the way to stop."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, data)
            except Exception:
                log.exception("event listener %r failed; it is dropped", listener)
                with self._lock:
                    if listener in self._listeners:
                        self._listeners.remove(listener)
