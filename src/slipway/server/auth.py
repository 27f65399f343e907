"""Bearer tokens and roles for every ``/api/`` route (webhooks authenticate by signature instead).

``Authorization: Bearer slw_<id>_<secret>``; the engine checks it against the salted hash it
keeps (:meth:`Engine.authenticate`, in a worker thread: scrypt is slow on purpose). No token or
an unknown one is 401, a role below the route's is 403. Failed attempts are counted per client
(the peer, or the client a trusted proxy names) and per token name: from the 5th failure on, an
attempt of that client or at that name waits longer before it is looked at (up to 5 s), and from
the 50th it is refused with 429 until ten quiet minutes pass or a token's first check succeeds.
A token this process already saw valid is let in at once, so one client's failures never hold
back another client's valid token. Both tables are bounded (least recently failed go first).

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
from functools import partial
from typing import Annotated, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from .context import ApiError, Context, Ctx

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


class _Failures:
    """Failures per key; bounded, the least recently failed dropped first."""

    def __init__(self, capacity: int, forget_after: float) -> None:
        self.capacity = capacity
        self.forget_after = forget_after
        self._table: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def count(self, key: str) -> int:
        entry = self._table.get(key)
        if entry is None:
            return 0
        if time.monotonic() - entry[1] > self.forget_after:
            del self._table[key]
            return 0
        return entry[0]

    def add(self, key: str) -> None:
        self._table[key] = (self.count(key) + 1, time.monotonic())
        self._table.move_to_end(key)
        while len(self._table) > self.capacity:
            self._table.popitem(last=False)

    def clear(self, key: str) -> None:
        self._table.pop(key, None)

    def __len__(self) -> int:
        return len(self._table)


class Throttle:
    """Failed attempts counted per client and per token name, each in a bounded table.

    An attempt is held back (and then refused) by the failures of its own client and of the
    token name it presents, never by anyone else's: a token already proven valid in this
    process skips both (see :func:`authenticate_token`).
    """

    SLOW_AFTER = 5
    REFUSE_AFTER = 50
    FORGET_AFTER = 600.0
    MAX_DELAY = 5.0

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._clients = _Failures(capacity, self.FORGET_AFTER)
        self._tokens = _Failures(capacity, self.FORGET_AFTER)
        self._lock = threading.Lock()

    def verdict(self, client: str, token: str | None = None) -> tuple[float, str | None]:
        """(seconds to hold this attempt back, why it is refused — None when it is not)."""
        with self._lock:
            by_client = self._clients.count(client)
            by_token = self._tokens.count(token) if token else 0
        if by_client >= self.REFUSE_AFTER:
            return 0.0, "too many failed attempts from this client; try again later"
        if by_token >= self.REFUSE_AFTER:
            return 0.0, "too many failed attempts with this token's name; try again later"
        n = max(by_client, by_token)
        if n < self.SLOW_AFTER:
            return 0.0, None
        return float(min(self.MAX_DELAY, 0.1 * 2 ** (n - self.SLOW_AFTER))), None

    def failed(self, client: str, token: str | None = None) -> None:
        with self._lock:
            self._clients.add(client)
            if token:
                self._tokens.add(token)

    def succeeded(self, client: str, token: str | None = None) -> None:
        with self._lock:
            self._clients.clear(client)
            if token:
                self._tokens.clear(token)

    def __len__(self) -> int:
        return len(self._clients) + len(self._tokens)


def client_address(request: Request) -> str:
    """Who is asking: the peer, or the client a trusted proxy names (``--forwarded-allow-ips``)."""
    return request.client.host if request.client else "unknown"


async def authenticate_token(request: Request, ctx: Context, token: str) -> Principal:
    """The token's principal; 401 for a bad one, 429 while its client or its name is throttled.

    A token this process has already seen valid is let in at once (one read of its row), whatever
    anyone's failures: only attempts that need the slow check are held back.
    """
    throttle: Throttle = request.app.state.throttle
    client = client_address(request)
    name = ctx.engine.token_id(token)
    who: Principal | None = None
    if name is not None:
        who = await run_in_threadpool(partial(ctx.engine.authenticate, token, known_only=True))
    if who is None:
        wait, refused = throttle.verdict(client, name)
        if refused:
            raise ApiError(429, refused)
        if wait:
            await asyncio.sleep(wait)
        who = await run_in_threadpool(ctx.engine.authenticate, token) if token else None
        if who is None:
            throttle.failed(client, name)
            raise ApiError(401, "invalid or revoked token")
        # A first success clears its client's count too (a person who mistyped); a token already
        # known does not, or a guesser holding one valid token could clear its count at will.
        throttle.succeeded(client, name)
    return who


async def authenticate(
    request: Request, ctx: Context, role: str, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The caller by bearer token (or dashboard session) if its role is ``role`` or above."""
    sessions = getattr(request.app.state, "sessions", None)  # the dashboard's, when it is mounted
    who: Principal | None
    if credentials is None and sessions is not None and request.cookies.get(sessions.cookie):
        # A session that ended is not a guess (its id has 256 random bits): it slows no one down.
        who = await sessions.principal(request, ctx.engine)
        request.state.credential = ("session", request.cookies.get(sessions.cookie))
    elif credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        throttle: Throttle = request.app.state.throttle
        client = client_address(request)
        _, refused = throttle.verdict(client)
        if refused:
            raise ApiError(429, refused)
        throttle.failed(client)
        raise ApiError(401, "missing bearer token: send Authorization: Bearer <token>")
    else:
        who = await authenticate_token(request, ctx, credentials.credentials)
        request.state.credential = ("token", credentials.credentials)
    if who is None:
        raise ApiError(401, "invalid or revoked token")
    if not who.allows(role):
        raise ApiError(403, f"token {who.name!r} has role {who.role}; this needs {role} or above")
    request.state.actor = actor(who)
    return who


def require(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if their token is valid and their role is ``role`` or above."""
    if role not in ROLES:
        raise ValueError(role)

    async def check(
        request: Request,
        ctx: Ctx,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        return await authenticate(request, ctx, role, credentials)

    return check


async def bearer(request: Request) -> HTTPAuthorizationCredentials | None:
    """The request's bearer credentials, for a route that decides by itself whether it needs them."""
    return await _bearer(request)


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]

__all__ = [
    "ROLES",
    "Admin",
    "Operator",
    "Principal",
    "Throttle",
    "Viewer",
    "actor",
    "authenticate",
    "authenticate_token",
    "bearer",
    "client_address",
    "require",
]
