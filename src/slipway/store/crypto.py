"""Encryption at rest for what must never sit in plain text: Git credentials and Secret objects.

A Fernet key (AES-128-CBC with HMAC-SHA256) is created once as ``$SLIPWAY_HOME/secret.key`` with
mode 0600, written whole and then linked into place, so two processes starting together agree on
one key and none ever reads a half-written one. Whoever can read
that file can read the secrets, exactly as with a kubeconfig.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ..errors import SlipwayError

_lock = threading.Lock()
_cache: dict[Path, Fernet] = {}


def _fernet(home: Path) -> Fernet:
    path = home / "secret.key"
    with _lock:
        f = _cache.get(path)
        if f is not None:
            return f
        home.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create_key(path)
        key = path.read_bytes().strip()
        if not key:
            raise SlipwayError(f"the encryption key {path} is empty; remove it to start afresh")
        f = _cache[path] = Fernet(key)
        return f


def _create_key(path: Path) -> None:
    """Write a new key whole, then link it into place: a reader never sees a half-written key, and of
    two processes starting together the first link wins and the other uses that key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encrypt(home: Path, data: bytes) -> bytes:
    return _fernet(home).encrypt(data)


def decrypt(home: Path, token: bytes) -> bytes:
    try:
        return _fernet(home).decrypt(token)
    except InvalidToken:
        raise SlipwayError(
            f"cannot decrypt stored secrets with {home / 'secret.key'}: the key changed; register the "
            "repository's credentials again"
        ) from None
