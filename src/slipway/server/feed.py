"""The syncs other processes run, for this server's event stream.

In the shipped layout a server replica runs no syncs of its own for auto-sync (the controllers
do), and a manual sync runs on whichever replica took the request; yet every replica's
``/api/v1/events`` must show them all. A thread follows the store's records of syncs
(the engine's ``sync_feed``: a one-second watch of their metadata on the kubernetes store, a
read by sequence number on SQLite) and hands their ``started`` and ``finished`` to the stream's hub
only — never to the engine's bus, so notifications and metrics stay with the process that ran the
sync (each sent once). Progress events (``applied``, ``wave``...) stay with that process too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import SlipwayError, describe

log = logging.getLogger("slipway.server")

EVERY = 1.0  # seconds between looks (a watch on the kubernetes store waits this long itself)
RETRY = 5.0


class Feed:
    def __init__(
        self,
        read: Callable[[Any], tuple[list[tuple[str, dict[str, Any]]], Any]],
        deliver: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.read = read  # the engine's sync_feed: (events, cursor) since cursor
        self.deliver = deliver
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Feed:
        self._thread = threading.Thread(target=self._run, name="slipway-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        cursor: Any = None
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                events, cursor = self.read(cursor)
            except SlipwayError as e:
                log.warning("events: cannot follow the syncs other processes run: %s", describe(e))
                self.stop_event.wait(RETRY)
                continue
            except Exception:
                log.exception("events: following the syncs other processes run failed")
                self.stop_event.wait(RETRY)
                continue
            for event, data in events:
                self.deliver(event, data)
            self.stop_event.wait(max(0.0, EVERY - (time.monotonic() - started)))


__all__ = ["Feed"]
