"""Whether what let a long request in still holds: a revoked token ends its open streams.

A request is authenticated once, when it comes in; an event stream then stays open for hours.
``slipway token revoke`` runs in another process (or on another replica) and only writes the
store, so each open stream asks again about once a second (:data:`EVERY`) whether its token is
still valid, and for a dashboard session whether the session is still there. One answer per
token is shared by all its streams for that second, so a thousand open streams of one token cost
one read of its row a second, on either store.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..errors import describe

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger("slipway.server")

EVERY = 1.0  # seconds between two checks of one token
_CAPACITY = 4096


class Revocations:
    """Is this token still valid? Asked of the store at most once per :data:`EVERY` per token."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._answers: OrderedDict[bytes, tuple[bool, float]] = OrderedDict()
        self._lock = threading.Lock()

    def valid(self, token: str) -> bool:
        """Blocking (one read of the token's row when the last answer is older than a second)."""
        key = hashlib.sha256(token.encode()).digest()  # never the token itself in a table
        now = time.monotonic()
        with self._lock:
            answer = self._answers.get(key)
        if answer is not None and now - answer[1] < EVERY:
            return answer[0]
        ok = self.engine.authenticate(token) is not None
        with self._lock:
            self._answers[key] = (ok, now)
            self._answers.move_to_end(key)
            while len(self._answers) > _CAPACITY:
                self._answers.popitem(last=False)
        return ok


def watch(request: Request) -> Callable[[], Awaitable[str | None]] | None:
    """For a request that stays open: a check that says why it must end now (None: it may go on)."""
    credential = getattr(request.state, "credential", None)
    revocations: Revocations | None = getattr(request.app.state, "revocations", None)
    if credential is None or revocations is None:
        return None
    kind, value = credential

    async def ended() -> str | None:
        assert revocations is not None
        token = value
        if kind == "session":
            sessions = request.app.state.sessions
            session = sessions.peek(value)
            if session is None:
                return "the dashboard session ended; log in again"
            token = session.token
        try:
            if kind == "session" and not token:  # a stored session keeps its token's id, never the token
                engine = request.app.state.slipway.engine
                if await run_in_threadpool(request.app.state.sessions.check, session, engine) is not None:
                    return None
            elif await run_in_threadpool(revocations.valid, token):
                return None
        except Exception as e:  # fail closed: a client reconnects, and is checked again then
            log.warning("event stream: cannot check its token: %s", describe(e))
            return "the token could not be checked (the state store did not answer)"
        if kind == "session":
            request.app.state.sessions.drop(value)
        return "the token was revoked"

    return ended


__all__ = ["EVERY", "Revocations", "watch"]
