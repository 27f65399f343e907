"""Encryption at rest for what must never sit in plain text: Git credentials and Secret objects.

A Fernet key (AES-128-CBC with HMAC-SHA256) is created once as ``$SLIPWAY_HOME/secret.key`` with
mode 0600, exclusively, so two processes starting together agree on one key. Whoever can read
that file can read the secrets, exactly as with a kubeconfig.
"""

from __future__ import annotations

import os
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
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(Fernet.generate_key())
        key = path.read_bytes().strip()
        if not key:
            raise SlipwayError(f"the encryption key {path} is empty; remove it to start afresh")
        f = _cache[path] = Fernet(key)
        return f


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
