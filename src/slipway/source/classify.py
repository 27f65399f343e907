"""What git's complaint means: one place that turns its stderr into an error a user can act on.

git and ssh say what went wrong only in English prose (slipway runs them with ``LC_ALL=C``), so
:func:`classify` matches that prose against the tables below, most specific first: a changed or
unknown SSH host key, a key ssh cannot load, refused credentials, a missing branch, objects that
fail git's checks, an unreachable server (the only kind worth retrying), no repository at the URL.
Every message starts with the repository's id and URL (without credentials).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import HostKeyError, SourceAuthError, SourceError, TransientSourceError
from ..model import Repository
from ..urls import redact_url

if TYPE_CHECKING:
    from .auth import Auth

_HOSTKEY_CHANGED = ("remote host identification has changed", "has changed and you have requested strict")
_HOSTKEY_UNKNOWN = ("host key verification failed", "host key is known for")
_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied (publickey",
    "permission denied, please try again",
    "invalid username or password",
    "http basic: access denied",
    "returned error: 401",
    "returned error: 403",
    "the requested url returned error: 401",
    "the requested url returned error: 403",
    "bad credentials",
)
_BAD_KEY = ("load key", "invalid format", "bad permissions", "unprotected private key")
# fetch.fsckObjects refused an object: "error: object <id>: <msg-id>: ..." then "fatal: fsck error in ...".
# Not "index-pack failed" alone: a connection dropped in the middle of the pack ends that way too.
_BAD_OBJECT = ("fsck error",)
_TRANSIENT = (
    "could not resolve host",
    "could not resolve hostname",
    "temporary failure in name resolution",
    "name or service not known",
    "connection refused",
    "connection timed out",
    "operation timed out",
    "operation too slow",  # curl: the server stopped sending (GIT_HTTP_LOW_SPEED_*)
    "timed out",
    "network is unreachable",
    "no route to host",
    "connection reset",
    "connection closed by",
    "failed to connect",
    "couldn't connect",
    "kex_exchange_identification",
    "the remote end hung up unexpectedly",
    "early eof",
    "rpc failed",
    "returned error: 500",
    "returned error: 502",
    "returned error: 503",
    "returned error: 504",
    "returned error: 429",
    "gnutls",
    "ssl_connect",
    "broken pipe",
)
_NO_REPO = (
    "does not appear to be a git repository",
    "repository not found",
    "not a git repository",
    "returned error: 404",
    "not found",
)
_FSCK_LINE = re.compile(r"^error: object ([0-9a-f]{7,64}): (\w+: .*)$", re.MULTILINE)


def repo_label(repo: Repository) -> str:
    """How every message names a repository: its id and its URL without credentials."""
    return f"repository {repo.id} ({redact_url(repo.url)})"


def last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.lower().startswith(("fatal:", "error:")):
            return ln.split(":", 1)[1].strip()
    return lines[-1] if lines else "no output"


def _reason(stderr: str, patterns: tuple[str, ...]) -> str:
    """The line of git's (or ssh's) complaint that says most, without the prefixes around it."""
    for line in stderr.splitlines():
        if any(p in line.lower() for p in patterns):
            line = re.sub(r"^(fatal|error|ssh): ", "", line.strip())
            return re.sub(r"^unable to access '[^']*': ", "", line)
    return last_line(stderr)


def classify(name: str, repo: Repository, op: str, stderr: str, auth: Auth) -> SourceError:
    """One place that turns git's complaint into an error a user can act on."""
    low = stderr.lower()
    if any(s in low for s in _HOSTKEY_CHANGED):
        if auth.tofu:
            hint = (
                f"the key was trusted on first use and recorded in {auth.known_hosts_file}; if the server's "
                "key really changed, remove that file to trust the new key"
            )
        else:
            hint = "if the server's key really changed, update credentials.known_hosts"
        return HostKeyError(f"{name}: the SSH host key of the server CHANGED; refusing to connect", hint=hint)
    if any(s in low for s in _HOSTKEY_UNKNOWN):
        if auth.kind == "ssh" and not auth.tofu:
            hint = "the server's key is not in credentials.known_hosts (ssh-keyscan shows it)"
        elif auth.kind == "ssh":
            hint = f"check {auth.known_hosts_file}"
        else:
            hint = "register the repository with ssh credentials and known_hosts, or add the host to ~/.ssh/known_hosts"
        return HostKeyError(f"{name}: the SSH host key of the server is unknown; refusing to connect", hint=hint)
    if auth.kind == "ssh" and any(s in low for s in _BAD_KEY):
        return SourceAuthError(
            f"{name}: ssh cannot load the private key of credentials.ssh_key "
            "(not a private key, protected by a passphrase, or a key file readable by others)"
        )
    if any(s in low for s in _AUTH):
        if auth.kind == "none":
            return SourceAuthError(
                f"{name}: the server requires credentials and none are registered",
                hint="register the repository with credentials (token, userpass or ssh)",
            )
        what = {"token": "token", "userpass": "username and password", "ssh": "SSH key"}.get(auth.kind, auth.kind)
        return SourceAuthError(f"{name}: the server refused the {what} (authentication failed)")
    if "couldn't find remote ref" in low or "could not find remote ref" in low:
        return SourceError(f'{name}: branch "{repo.branch}" does not exist')
    bad = _FSCK_LINE.search(stderr)
    if bad or any(s in low for s in _BAD_OBJECT):
        what = f"object {bad.group(1)[:12]}: {bad.group(2)}" if bad else last_line(stderr)
        return SourceError(
            f"{name}: the server sent a Git object that fails git's checks, and nothing was fetched ({what})"
        )
    if any(s in low for s in _TRANSIENT):
        return TransientSourceError(f"{name}: cannot reach the Git server: {_reason(stderr, _TRANSIENT)}")
    if any(s in low for s in _NO_REPO):
        return SourceError(f"{name}: there is no Git repository at this URL, or no access to it")
    return SourceError(f"{name}: git {op} failed: {last_line(stderr)}")
