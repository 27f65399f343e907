"""How one git call authenticates, with no secret in an argv, a URL or a file that outlives it.

HTTPS user names and passwords (a token, a password, or a credential that was written into the
URL) travel in the child's environment to a small askpass helper that holds none of them, and
git's credential helpers are switched off for the call, so nothing asks or stores elsewhere. An
SSH key text lives in a 0600 file only while git runs. SSH host keys are checked against the
repository's ``known_hosts``, or trusted on first use and pinned per repository under the home.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, SourceError
from ..model import Credentials, Repository
from ..urls import UrlError, split_url
from .classify import repo_label
from .process import STALL_SECONDS, Git

# The askpass helper holds no secret: git runs it with the prompt as $1 and it answers from the
# environment slipway gave that one git process.
_ASKPASS = """#!/bin/sh
# slipway askpass helper: answers git's prompts from the environment of the calling git process.
case "$1" in
  [Uu]sername*) printf '%s\\n' "$SLIPWAY_GIT_USERNAME" ;;
  *) printf '%s\\n' "$SLIPWAY_GIT_PASSWORD" ;;
esac
"""


@dataclass
class Auth:
    """How one git call authenticates: extra ``-c`` options, environment, values to scrub from output."""

    url: str
    config: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    kind: str = "none"
    known_hosts_file: Path | None = None
    tofu: bool = False


def git_url(repo: Repository) -> str:
    """The URL git is given: the repository's, without any credential written into it."""
    try:
        return split_url(repo.url).url
    except UrlError as e:
        raise SourceError(f"{repo_label(repo)}: url: {e}") from None


def _ssh_path(path: Path) -> str:
    # ssh splits option values at spaces and expands %-tokens in file names (even with -i)
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _looks_like_key(value: str) -> bool:
    return "-----BEGIN" in value or "\n" in value.strip()


def _looks_like_known_hosts(value: str) -> bool:
    first = value.strip().splitlines()[0] if value.strip() else ""
    return "\n" in value.strip() or len(first.split()) >= 3


def _askpass(cache_dir: Path) -> Path:
    path = cache_dir / "askpass.sh"
    with contextlib.suppress(OSError):
        if path.read_text() == _ASKPASS and os.access(path, os.X_OK):
            return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".askpass-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
    with os.fdopen(fd, "w") as out:
        out.write(_ASKPASS)
    os.replace(tmp, path)
    return path


def _credentials(repo: Repository) -> Credentials | None:
    """The repository's credentials, or those still written into its URL (a repository built by hand,
    or stored before URLs were split), read the same way :class:`Repository` reads a new URL."""
    try:
        parts = split_url(repo.url)
        if repo.credentials is not None or parts.username is None:
            return repo.credentials
        return Credentials.from_url(parts)
    except (UrlError, ConfigError) as e:
        raise SourceError(f"{repo_label(repo)}: url: {e}") from None


@contextlib.contextmanager
def authenticate(git: Git, home: Path, repo: Repository, timeout: float) -> Iterator[Auth]:
    """How git reaches ``repo`` for the length of the block (temporary files go at its end)."""
    url = git_url(repo)
    creds = _credentials(repo)
    if creds is None:
        yield Auth(url=url, env=git.env())
        return
    if creds.type in ("token", "userpass"):
        if creds.type == "token" and creds.token_as_username:
            username, password, hidden = creds.token or "", "", creds.token or ""
        elif creds.type == "token":
            username, password = creds.username or "x-access-token", creds.token or ""
            hidden = password
        else:
            username, password = creds.username or "", creds.password or ""
            hidden = password
        env = git.env(
            {
                "GIT_ASKPASS": str(_askpass(git.cache_dir)),
                "SLIPWAY_GIT_USERNAME": username,
                "SLIPWAY_GIT_PASSWORD": password,
            }
        )
        # An empty credential.helper resets the list: nothing asks the user's helpers, nothing is stored.
        yield Auth(url=url, config=["-c", "credential.helper="], env=env, secrets=(hidden,), kind=creds.type)
        return
    if creds.type != "ssh":
        raise SourceError(f"{repo_label(repo)}: unknown credentials type {creds.type!r}")
    with _ssh(git, home, repo, creds, url, timeout) as auth:
        yield auth


@contextlib.contextmanager
def _ssh(git: Git, home: Path, repo: Repository, creds: Credentials, url: str, timeout: float) -> Iterator[Auth]:
    name = repo_label(repo)
    key_value = creds.ssh_key or ""
    tmp = Path(tempfile.mkdtemp(prefix="ssh-", dir=git.tmpdir()))
    try:
        if _looks_like_key(key_value):
            key_file = tmp / "key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                # ssh rejects a key without its final newline or with CRLFs ("invalid format")
                out.write(key_value.replace("\r\n", "\n").strip() + "\n")
        else:
            key_file = Path(key_value).expanduser()
            if not key_value or not key_file.is_file():
                raise SourceError(
                    f"{name}: credentials.ssh_key is neither a private key (text starting with "
                    "-----BEGIN) nor the path of a readable key file"
                )
        tofu = False
        known = creds.known_hosts
        if known and _looks_like_known_hosts(known):
            known_file = tmp / "known_hosts"
            known_file.write_text(known.replace("\r\n", "\n").strip() + "\n")
        elif known:
            known_file = Path(known).expanduser()
            if not known_file.is_file():
                raise SourceError(
                    f"{name}: credentials.known_hosts {known!r} is neither known_hosts lines nor an existing file"
                )
        else:
            tofu = True
            known_dir = home / "known_hosts"
            known_dir.mkdir(parents=True, exist_ok=True)
            known_dir.chmod(0o700)
            known_file = known_dir / repo.id
        command = [
            "ssh",
            "-o",
            f"IdentityFile={_ssh_path(key_file)}",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={_ssh_path(known_file)}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            f"StrictHostKeyChecking={'accept-new' if tofu else 'yes'}",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            f"ConnectTimeout={max(1, min(30, int(timeout)))}",
            "-o",  # a connection that stops answering ends (see process.STALL_SECONDS)
            f"ServerAliveInterval={max(1, STALL_SECONDS // 3)}",
            "-o",
            "ServerAliveCountMax=3",
        ]
        env = git.env({"GIT_SSH_COMMAND": shlex.join(command), "GIT_SSH_VARIANT": "ssh"})
        yield Auth(url=url, env=env, kind="ssh", known_hosts_file=known_file, tofu=tofu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
