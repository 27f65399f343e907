"""The dashboard's logins: a server-side session per browser, named by an HttpOnly cookie.

Logging in exchanges an API token for a random session id. The cookie carries only that id
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` over HTTPS), so the token is never within reach of
the page's scripts, web storage or the browser's cookie jar. With a state store (what ``slipway
server`` mounts) a session is kept there — the token's id, name and role, by a hash of the session
id, never the id nor the token — so it works on every server replica, and a logout on one ends it
on all; each request checks that its token still exists, so a revoked token ends its sessions at
once, everywhere. Its CSRF token is derived from the session id, so any replica computes it.
Without a store (a table in memory) the token itself is kept and checked again on every request.
Sessions end on logout, after ``IDLE`` seconds without a request, and ``LIFETIME`` seconds after
login at the latest.

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
    from ...engine import Engine, SessionRows
    from ..auth import Principal

COOKIE = "slipway_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LIFETIME = 8 * 3600.0  # seconds after login a session ends, whatever happens
IDLE = 3600.0  # seconds without a request after which it ends
CAPACITY = 10_000  # sessions kept at once in memory; the least recently used go first
TOUCH_EVERY = 60.0  # seconds: a stored session's last use is written at most this often
SWEEP_EVERY = 600.0  # seconds between clearing out stored sessions that ended without a logout


@dataclass
class Session:
    token: str = field(repr=False)  # kept in memory only; "" for a session kept in the store
    name: str
    role: str
    csrf: str = field(repr=False)
    created: float
    seen: float
    token_id: str = ""


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _csrf(session_id: str) -> str:
    """A session's CSRF token: any replica derives it from the (secret, HttpOnly) id; another site has neither."""
    return hashlib.sha256(b"slipway-csrf:" + session_id.encode()).hexdigest()


class Sessions:
    """Sessions by the hash of their id; bounded, expiring, safe to use from any thread."""

    cookie = COOKIE

    def __init__(
        self,
        *,
        lifetime: float = LIFETIME,
        idle: float = IDLE,
        clock: Callable[[], float] = time.time,
        store: SessionRows | None = None,
    ) -> None:
        self.lifetime = lifetime
        self.idle = idle
        self.clock = clock
        self.store = store
        self._table: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()
        self._swept = 0.0

    def create(self, token: str, who: Principal) -> tuple[str, Session]:
        """A new session for a token that just authenticated as ``who``; returns its id and the session."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        if self.store is not None:
            token_id = str(getattr(who, "id", ""))
            session = Session("", who.name, who.role, _csrf(session_id), now, now, token_id)
            row = {"token_id": token_id, "name": who.name, "role": who.role, "created": now, "seen": now,
                   "expires": now + self.lifetime}  # fmt: skip
            self.store.put_session(_key(session_id), row)
            self._sweep(now)
            return session_id, session
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
        if self.store is not None:
            return self._stored(session_id, key, now)
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

    def _stored(self, session_id: str, key: str, now: float) -> Session | None:
        assert self.store is not None
        row = self.store.get_session(key)
        if row is None:
            return None
        if now > row["expires"] or now - row["created"] > self.lifetime or now - row["seen"] > self.idle:
            self.store.delete_session(key)
            return None
        if now - row["seen"] > TOUCH_EVERY:  # the idle clock, written at most once a minute
            self.store.touch_session(key, now)
        return Session("", row["name"], row["role"], _csrf(session_id), row["created"], now, row["token_id"])

    def _sweep(self, now: float) -> None:
        """Forget sessions that ended without a logout (at most every ``SWEEP_EVERY`` seconds)."""
        if self.store is not None and now - self._swept > SWEEP_EVERY:
            self._swept = now
            self.store.expire_sessions(now, self.idle)

    def peek(self, session_id: str | None) -> Session | None:
        """The live session of this id without counting it as used (an open event stream asks)."""
        if not session_id:
            return None
        now = self.clock()
        if self.store is not None:
            row = self.store.get_session(_key(session_id))
            if (
                row is None
                or now > row["expires"]
                or now - row["created"] > self.lifetime
                or now - row["seen"] > self.idle
            ):
                return None
            return Session(
                "", row["name"], row["role"], _csrf(session_id), row["created"], row["seen"], row["token_id"]
            )
        with self._lock:
            session = self._table.get(_key(session_id))
        if session is None or now - session.created > self.lifetime or now - session.seen > self.idle:
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id and self.store is not None:
            self.store.delete_session(_key(session_id))
        elif session_id:
            with self._lock:
                self._table.pop(_key(session_id), None)

    def check(self, session: Session, engine: Engine) -> Principal | None:
        """Who the session's token is now (its role may have changed); None when it was revoked."""
        if not session.token_id:
            return engine.authenticate(session.token)
        return engine.token_by_id(session.token_id)

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
        session = await run_in_threadpool(self.get, session_id)
        if session is None:
            raise ApiError(401, "your dashboard session has ended; log in again")
        if request.method not in SAFE_METHODS:
            check_same_origin(request)
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise ApiError(403, "missing or wrong CSRF token (X-CSRF-Token) for this session")
        who: Principal | None = await run_in_threadpool(self.check, session, engine)
        if who is None:
            await run_in_threadpool(self.drop, session_id)
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
