"""What git's own configuration says about reaching a server, read once for in-process checks.

The in-process ref checks (:mod:`.refs`) must reach a server exactly as ``git`` would: URL
rewrites (``url.<base>.insteadOf``), the CA bundle and verification (``http.sslCAInfo``,
``http.sslCAPath``, ``http.sslVerify`` and their ``GIT_SSL_*`` variables), and no proxy. One
``git config --list`` reads the user's and the system's files (includes followed, ``GIT_CONFIG_*``
variables applied); the answer is kept until one of those files changes. Any HTTP setting this
module does not understand (a proxy, extra headers, cookies, client certificates, settings for a
URL) makes it unsure, and the caller asks git instead.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .process import Git

# http.* keys the in-process client honours or that do not change how refs are read.
_HTTP_UNDERSTOOD = frozenset(
    {
        "http.sslcainfo", "http.sslcapath", "http.sslverify", "http.postbuffer", "http.lowspeedlimit",
        "http.lowspeedtime", "http.version", "http.maxrequests", "http.minsessions", "http.useragent",
        "http.followredirects", "http.sslbackend", "http.schannelcheckrevoke", "http.schannelusesslcainfo",
    }
)  # fmt: skip
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclass(frozen=True)
class Snapshot:
    instead_of: tuple[tuple[str, str], ...] = ()  # (prefix, base), longest prefix first
    ca_file: str | None = None
    ca_path: str | None = None
    verify: bool = True
    http_unsure: str | None = None  # why an HTTP check must be left to git, or None
    ssh_unsure: str | None = None
    values: dict[str, list[str]] = field(default_factory=dict)

    def rewrite(self, url: str) -> str:
        """``url`` after git's ``insteadOf`` rules (the longest matching prefix wins)."""
        for prefix, base in self.instead_of:
            if url.startswith(prefix):
                return base + url[len(prefix) :]
        return url


def _bool(value: str) -> bool:
    return value.strip().lower() not in ("false", "no", "off", "0", "")


def _last(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[-1] if found else None


def parse(listing: bytes) -> Snapshot:
    """A snapshot from ``git config --list -z`` output (``key\\nvalue\\0`` records)."""
    values: dict[str, list[str]] = {}
    for record in listing.split(b"\0"):
        if not record:
            continue
        key, _, value = record.decode("utf-8", "replace").partition("\n")
        values.setdefault(key, []).append(value)
    rules: list[tuple[str, str]] = []
    http_unsure = None
    for key, vals in values.items():
        lower = key.lower()
        if lower.startswith("url.") and lower.endswith(".insteadof"):
            base = key[4 : -len(".insteadof")]
            rules += [(prefix, base) for prefix in vals]
        elif lower.startswith("http.") and lower not in _HTTP_UNDERSTOOD:
            http_unsure = http_unsure or f"git config {key}"
    rules.sort(key=lambda r: len(r[0]), reverse=True)
    ssh_unsure = next((f"git config {k}" for k in values if k.lower() in ("core.sshcommand", "ssh.variant")), None)
    return Snapshot(
        instead_of=tuple(rules),
        ca_file=_last(values, "http.sslcainfo"),
        ca_path=_last(values, "http.sslcapath"),
        verify=_bool((values.get("http.sslverify") or ["true"])[-1]),
        http_unsure=http_unsure,
        ssh_unsure=ssh_unsure,
        values=values,
    )


def _with_environment(snap: Snapshot) -> Snapshot:
    env = os.environ
    http_unsure = snap.http_unsure
    proxy = next((v for v in _PROXY_ENV if env.get(v)), None)
    if proxy is not None:
        http_unsure = http_unsure or f"${proxy}"  # no_proxy matching is git's (curl's) to do
    ssh_unsure = snap.ssh_unsure or next((f"${v}" for v in ("GIT_SSH", "GIT_SSH_COMMAND") if env.get(v)), None)
    return Snapshot(
        instead_of=snap.instead_of,
        ca_file=env.get("GIT_SSL_CAINFO") or snap.ca_file,
        ca_path=env.get("GIT_SSL_CAPATH") or snap.ca_path,
        verify=snap.verify and not _bool(env.get("GIT_SSL_NO_VERIFY", "") or "false"),
        http_unsure=http_unsure,
        ssh_unsure=ssh_unsure,
        values=snap.values,
    )


class GitConfig:
    """git's configuration as :class:`Snapshot`, read again only when one of its files changes."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._snapshot: Snapshot | None = None

    def _files(self) -> list[Path]:
        env = os.environ
        home = Path(env.get("HOME") or "~").expanduser()
        xdg = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        files = [Path(env["GIT_CONFIG_GLOBAL"])] if env.get("GIT_CONFIG_GLOBAL") else [home / ".gitconfig"]
        files.append(xdg / "git" / "config")
        if not env.get("GIT_CONFIG_NOSYSTEM"):
            files.append(Path(env.get("GIT_CONFIG_SYSTEM") or "/etc/gitconfig"))
        return files

    def _state(self) -> tuple[object, ...]:
        stamps: list[object] = []
        for f in self._files():
            try:
                st = f.stat()
                stamps.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append((str(f), None))
        watched = ("GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM")
        return (*stamps, *(os.environ.get(v) for v in watched))

    def snapshot(self) -> Snapshot:
        with self._lock:
            key = self._state()
            if self._snapshot is None or key != self._key:
                result = self._git.run(
                    ["config", "--list", "-z", "--includes"], env=self._git.env(), timeout=30, cwd=self._git.workdir()
                )
                # No config at all is exit 1 with nothing listed: an empty snapshot.
                self._snapshot = parse(result.stdout if result.returncode == 0 else b"")
                self._key = key
            return _with_environment(self._snapshot)


__all__ = ["GitConfig", "Snapshot", "parse"]
