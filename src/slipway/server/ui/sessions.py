"""The dashboard's logins: a server-side session per browser, named by an HttpOnly cookie.

Logging in exchanges an API token for a random session id. The cookie carries only that id
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS), so the token is never within reach of
the page's scripts, web storage or the browser's cookie jar; this table keeps the token in the
server's memory and checks it again on every request (the engine's cheap path), so a revoked
token ends its sessions at once. Only a hash of each session id is kept. Sessions end on logout,
after ``IDLE`` seconds without a request, and ``LIFETIME`` seconds after login at the latest; a
restart of the server ends them all.

Cross-site requests: besides ``SameSite=Strict``, every unsafe request a session makes must send
the session's CSRF token in ``X-CSRF-Token`` and an ``Origin`` (and ``Sec-Fetch-Site``, when the
browser sends it) naming this server. Bearer-token requests need neither: a browser never adds an
``Authorization`` header on another site's behalf.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..context import ApiError

if TYPE_CHECKING:
    from ...engine import Engine
    from ..auth import Principal

COOKIE = "slipway_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LIFETIME = 8 * 3600.0  # seconds after login a session ends, whatever happens
IDLE = 3600.0  # seconds without a request after which it ends
CAPACITY = 10_000  # sessions kept at once; the least recently used go first


@dataclass
class Session:
    token: str = field(repr=False)
    name: str
    role: str
    csrf: str = field(repr=False)
    created: float
    seen: float


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Sessions by the hash of their id; bounded, expiring, safe to use from any thread."""

    cookie = COOKIE

    def __init__(
        self, *, lifetime: float = LIFETIME, idle: float = IDLE, clock: Callable[[], float] = time.time
    ) -> None:
        self.lifetime = lifetime
        self.idle = idle
        self.clock = clock
        self._table: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, token: str, who: Principal) -> tuple[str, Session]:
        """A new session for a token that just authenticated as ``who``; returns its id and the session."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(token, who.name, who.role, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._table[_key(session_id)] = session
            while len(self._table) > CAPACITY:
                self._table.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (and it counts as used now); None if unknown or expired."""
        if not session_id:
            return None
        key = _key(session_id)
        now = self.clock()
        with self._lock:
            session = self._table.get(key)
            if session is None:
                return None
            if now - session.created > self.lifetime or now - session.seen > self.idle:
                del self._table[key]
                return None
            session.seen = now
            self._table.move_to_end(key)
            return session

    def peek(self, session_id: str | None) -> Session | None:
        """The live session of this id without counting it as used (an open event stream asks)."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._table.get(_key(session_id))
        if session is None or now - session.created > self.lifetime or now - session.seen > self.idle:
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._table.pop(_key(session_id), None)

    def __len__(self) -> int:
        return len(self._table)

    async def principal(self, request: Request, engine: Engine) -> Principal | None:
        """Who a request's session cookie logs in; None when it has none.

        An unknown, expired or revoked session is 401; an unsafe request without the session's
        CSRF token, or from another origin, is 403.
        """
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            return None
        session = self.get(session_id)
        if session is None:
            raise ApiError(401, "your dashboard session has ended; log in again")
        if request.method not in SAFE_METHODS:
            check_same_origin(request)
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise ApiError(403, "missing or wrong CSRF token (X-CSRF-Token) for this session")
        who: Principal | None = await run_in_threadpool(engine.authenticate, session.token)
        if who is None:
            self.drop(session_id)
            raise ApiError(401, "the token of this dashboard session was revoked; log in again")
        return who


def check_same_origin(request: Request) -> None:
    """403 unless the browser says the request comes from a page of this very server.

    ``Origin`` must be present and name the host and port the browser asked for (the ``Host``
    header); ``Sec-Fetch-Site``, when sent, must be ``same-origin``.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        raise ApiError(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if not origin or origin == "null":
        raise ApiError(403, "cross-site request refused: no Origin header")
    parts, wanted = urlsplit(origin), urlsplit(f"//{host}")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        # Without a port in Host, either default port: a proxy in front may end TLS.
        ports = {wanted.port} if wanted.port else {80, 443}
    except ValueError:
        raise ApiError(403, "cross-site request refused: a malformed Origin or Host") from None
    if not parts.hostname or parts.hostname != wanted.hostname or port not in ports:
        raise ApiError(403, "cross-site request refused: the Origin is not this server")


__all__ = ["COOKIE", "CSRF_HEADER", "IDLE", "LIFETIME", "Session", "Sessions", "check_same_origin"]
