"""Bearer tokens and roles for every ``/api/`` route (webhooks authenticate by signature instead).

``Authorization: Bearer slw_<id>_<secret>``; the engine checks it against the salted hash it
keeps (:meth:`Engine.authenticate`, in a worker thread: scrypt is slow on purpose). No token or
an unknown one is 401, a role below the route's is 403. A client address that keeps failing is
slowed down: from the 5th failure on, each of its requests waits longer before it is looked at
(up to 5 s), and from the 50th it is refused outright with 429 until it has been quiet for ten
minutes or one of its requests succeeds. The table of addresses is bounded (least recently seen
go first), so a flood of addresses cannot grow it.

With the dashboard mounted (``app.state.sessions``), a request without an ``Authorization``
header may instead carry the dashboard's session cookie (:mod:`.ui.sessions`, which also checks
the CSRF token and Origin of unsafe requests); a bearer token always wins over a cookie.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from .context import ApiError, Ctx

ROLES = ("viewer", "operator", "admin")  # each role can do what the one before it can, and more

_bearer = HTTPBearer(auto_error=False, description="An API token made by `slipway token create`")


class Principal(Protocol):
    """Who is calling: what :meth:`Engine.authenticate` returns for a valid token."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    def allows(self, role: str) -> bool: ...


def actor(who: Principal) -> str:
    """How a token's caller is named in the history."""
    return f"token:{who.name}"


class Throttle:
    """Failures per client address; bounded, oldest entries dropped first."""

    SLOW_AFTER = 5
    REFUSE_AFTER = 50
    FORGET_AFTER = 600.0
    MAX_DELAY = 5.0

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _count(self, address: str) -> int:
        entry = self._failures.get(address)
        if entry is None:
            return 0
        if time.monotonic() - entry[1] > self.FORGET_AFTER:
            del self._failures[address]
            return 0
        return entry[0]

    def delay(self, address: str) -> float | None:
        """Seconds to hold this address's request back; None: refuse it."""
        with self._lock:
            n = self._count(address)
        if n >= self.REFUSE_AFTER:
            return None
        if n < self.SLOW_AFTER:
            return 0.0
        return float(min(self.MAX_DELAY, 0.1 * 2 ** (n - self.SLOW_AFTER)))

    def failed(self, address: str) -> None:
        with self._lock:
            n = self._count(address)
            self._failures[address] = (n + 1, time.monotonic())
            self._failures.move_to_end(address)
            while len(self._failures) > self.capacity:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def __len__(self) -> int:
        return len(self._failures)


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if their token is valid and their role is ``role`` or above."""
    if role not in ROLES:
        raise ValueError(role)

    async def check(
        request: Request,
        ctx: Ctx,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        throttle: Throttle = request.app.state.throttle
        address = request.client.host if request.client else "unknown"
        wait = throttle.delay(address)
        if wait is None:
            raise ApiError(429, "too many failed attempts from this address; try again later")
        if wait:
            await asyncio.sleep(wait)
        sessions = getattr(request.app.state, "sessions", None)  # the dashboard's, when it is mounted
        who: Principal | None
        if credentials is None and sessions is not None and request.cookies.get(sessions.cookie):
            # A session that ended is not a guess (its id has 256 random bits): it slows no one down.
            who = await sessions.principal(request, ctx.engine)
        elif credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            throttle.failed(address)
            raise ApiError(401, "missing bearer token: send Authorization: Bearer <token>")
        else:
            who = await run_in_threadpool(ctx.engine.authenticate, credentials.credentials)
        if who is None:
            throttle.failed(address)
            raise ApiError(401, "invalid or revoked token")
        throttle.succeeded(address)
        if not who.allows(role):
            raise ApiError(403, f"token {who.name!r} has role {who.role}; this needs {role} or above")
        request.state.actor = actor(who)
        return who

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]

__all__ = ["ROLES", "Admin", "Operator", "Principal", "Throttle", "Viewer", "actor", "require"]
