"""API tokens: who may call the server, with which role, kept as salted slow hashes.

A token reads ``slw_<id>_<secret>``: the id finds its row, the secret is checked against a
per-token salt and an scrypt hash with a constant-time compare. Only the hash is stored; the
token itself is shown once, when it is made. Checking scrypt costs tens of milliseconds, so a
token that passed once is remembered in memory as an HMAC under a key this process drew at
random (never written anywhere): later requests compare that instead, and still read the row
each time, so a revoked token stops working at once, whichever process revoked it.

Roles are ordered: a ``viewer`` reads, an ``operator`` also diffs, syncs and rolls back, an
``admin`` also registers and removes repositories, workflows and tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .durations import rfc3339
from .errors import ConfigError, NotFoundError
from .model import check_id

if TYPE_CHECKING:
    from .store import StateStore

ROLES = ("viewer", "operator", "admin")
PREFIX = "slw"
_TOKEN_RE = re.compile(r"^slw_([0-9a-f]{12})_([A-Za-z0-9_-]{20,200})$")
# scrypt: 16 MiB and ~50 ms per check; the in-memory cache keeps that off the hot path.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_TOUCH_EVERY = 60.0  # seconds: last_used is written at most this often per token
_CACHE_SIZE = 1024


@dataclass(frozen=True)
class ApiToken:
    id: str
    name: str
    role: str
    created_at: float
    created_by: str | None = None
    last_used_at: float | None = None

    def allows(self, role: str) -> bool:
        """True when this token's role is ``role`` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def public(self) -> dict[str, Any]:
        """Everything about the token but its secret (which is not kept anywhere)."""
        return {
            "name": self.name,
            "id": self.id,
            "role": self.role,
            "created_at": rfc3339(self.created_at),
            "created_by": self.created_by,
            "last_used_at": rfc3339(self.last_used_at) if self.last_used_at else None,
        }


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise ConfigError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    return str(role)


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


def _row_token(row: dict[str, Any]) -> ApiToken:
    return ApiToken(row["id"], row["name"], row["role"], row["created_at"], row["created_by"], row["last_used_at"])


class Tokens:
    """The catalog's token methods (mixed into :class:`~slipway.catalog.Catalog`)."""

    store: StateStore
    _token_cache: OrderedDict[str, tuple[bytes, bytes]]
    _token_lock: threading.Lock
    _token_key: bytes
    _token_checks: dict[str, threading.Lock]  # one scrypt at a time per token: many clients start at once
    _token_touched: dict[str, float]

    def _tokens_init(self) -> None:
        if not hasattr(self, "_token_key"):
            self._token_cache = OrderedDict()
            self._token_lock = threading.Lock()
            self._token_key = secrets.token_bytes(32)
            self._token_checks = {}
            self._token_touched = {}

    def create_token(self, name: str, role: str, *, created_by: str | None = None) -> tuple[ApiToken, str]:
        """A new token named ``name``; returns it and its secret text (shown once, stored only hashed)."""
        check_id(name, "name")
        check_role(role)
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        row = {
            "id": token_id,
            "name": name,
            "role": role,
            "salt": salt,
            "hash": _hash(secret, salt),
            "created_at": time.time(),
            "created_by": created_by,
            "last_used_at": None,
        }
        self.store.put_token(row)
        return _row_token(row), f"{PREFIX}_{token_id}_{secret}"

    @staticmethod
    def token_id(token: str) -> str | None:
        """The id a well-formed token names (not secret: it finds the row); None for anything else."""
        return token_id(token)

    def tokens(self) -> list[ApiToken]:
        return [_row_token(r) for r in self.store.list_tokens()]

    def token_by_id(self, token_id: str) -> ApiToken | None:
        """The token of this id as stored now (its role may have changed); None once revoked."""
        row = self.store.get_token(token_id)
        return _row_token(row) if row is not None else None

    def revoke_token(self, name: str) -> None:
        if not self.store.delete_token(name):
            raise NotFoundError(f"token {name!r} does not exist (see `slipway token list`)")

    def authenticate(self, token: str, *, known_only: bool = False) -> ApiToken | None:
        """The token's record if ``token`` is a valid, unrevoked token; None otherwise.

        ``known_only``: only the cheap check (one read of the row) — None as well for a token that
        did not pass the slow check in this process before, valid or not.
        """
        self._tokens_init()
        m = _TOKEN_RE.match(token or "")
        if m is None:
            return None
        token_id, secret = m.groups()
        row = self.store.get_token(token_id)
        if row is None:
            return None
        fast = hmac.new(self._token_key, token.encode(), hashlib.sha256).digest()
        if not self._known(token_id, row["hash"], fast):
            if known_only:
                return None
            with self._token_lock:
                check = self._token_checks.setdefault(token_id, threading.Lock())
            with check:  # the others wait for the first one's answer instead of paying scrypt too
                if not self._known(token_id, row["hash"], fast):
                    if not hmac.compare_digest(_hash(secret, row["salt"]), row["hash"]):
                        return None
                    with self._token_lock:
                        self._token_cache[token_id] = (row["hash"], fast)
                        self._token_cache.move_to_end(token_id)
                        while len(self._token_cache) > _CACHE_SIZE:
                            self._token_cache.popitem(last=False)
        now = time.time()
        with self._token_lock:
            last = max(row["last_used_at"] or 0.0, self._token_touched.get(token_id, 0.0))
            due = now - last > _TOUCH_EVERY
            if due:
                self._token_touched[token_id] = now
        if due:
            self.store.touch_token(token_id, now)
        return _row_token(row)

    def _known(self, token_id: str, stored: bytes, fast: bytes) -> bool:
        """Whether this very token passed scrypt before, against the hash the store still holds."""
        with self._token_lock:
            cached = self._token_cache.get(token_id)
        return cached is not None and hmac.compare_digest(cached[0], stored) and hmac.compare_digest(cached[1], fast)


def token_id(token: str) -> str | None:
    """The id a well-formed token names (not secret: it finds the row); None for anything else."""
    m = _TOKEN_RE.match(token or "")
    return m.group(1) if m else None


__all__ = ["PREFIX", "ROLES", "ApiToken", "Tokens", "check_role", "token_id"]
