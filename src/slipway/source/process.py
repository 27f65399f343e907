"""Running git: one process group per call, a deadline, and an environment slipway controls.

Every git process starts in a session of its own, so it has no terminal for ssh to prompt on and
a timeout can kill git together with its ssh or remote-https helpers. Its environment is the
user's (proxies, CA bundles, ``insteadOf`` rewrites still apply) minus whatever would point it at
another repository, trace credentials into stderr or prompt anyone. A failed call's stderr is
redacted, logged at debug level, and classified (:mod:`.classify`) into one error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SourceError, TransientSourceError
from ..model import Repository
from ..urls import redact_text
from .classify import classify, last_line, repo_label

if TYPE_CHECKING:
    from .auth import Auth

log = logging.getLogger("slipway.source")

# A transfer is judged by whether it moves, not by how long it takes: a huge repository through a
# slow link is fetched however long that takes (up to the caller's overall limit), while a server
# that stops sending (under LOW_SPEED_BYTES a second for STALL_SECONDS) ends the call as unreachable.
STALL_SECONDS = 30
LOW_SPEED_BYTES = 1000
FETCH_TIMEOUT = 1800.0  # the overall limit of one fetch that keeps moving

# Variables that would point our git calls at some other repository (e.g. when slipway runs from
# a git hook); the user's configuration variables (GIT_CONFIG_GLOBAL, ...) are deliberately kept.
_REPO_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: str


class Timeout(TransientSourceError):
    """A git call ran out of time (its whole process group has been killed)."""


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=5)


class Git:
    """Runs git for the mirrors under ``cache_dir``."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def workdir(self) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir

    def tmpdir(self) -> Path:
        tmp = self.cache_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o700)
        return tmp

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Traces would land in the stderr we log and quote, with HTTP auth headers in them.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _REPO_ENV and not k.startswith(("GIT_TRACE", "GIT_CURL_VERBOSE", "GIT_REDACT"))
        }
        env.pop("SSH_ASKPASS", None)
        env.pop("LANGUAGE", None)
        env["LC_ALL"] = "C"  # git's and ssh's messages in English, for classify()
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GIT_ASKPASS"] = ""  # an empty askpass: no GUI prompt from the user's environment
        env["GIT_HTTP_LOW_SPEED_LIMIT"] = str(LOW_SPEED_BYTES)
        env["GIT_HTTP_LOW_SPEED_TIME"] = str(STALL_SECONDS)
        # Keep repository discovery out of whatever directory contains the cache.
        env["GIT_CEILING_DIRECTORIES"] = str(self.cache_dir.parent)
        env.update(extra or {})
        return env

    def run(self, args: list[str], *, env: dict[str, str], timeout: float, cwd: Path | None = None) -> Result:
        git = shutil.which("git", path=env.get("PATH"))
        if git is None:
            raise SourceError("git is not installed (Debian package git)")
        proc = subprocess.Popen(
            [git, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd or self.workdir(),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise Timeout(f"git did not finish within {timeout:g}s") from None
        except BaseException:
            kill_group(proc)
            raise
        return Result(proc.returncode, out, err.decode("utf-8", "replace"))

    def local(self, args: list[str], timeout: float = 60) -> Result:
        """A git call that talks to no server (rev-parse, ls-tree, init, config)."""
        return self.run(args, env=self.env(), timeout=timeout)

    def plain(self, args: list[str], repo: Repository) -> None:
        """A local call that must succeed."""
        result = self.local(args)
        if result.returncode != 0:
            raise SourceError(f"{repo_label(repo)}: git {args[0]} failed: {last_line(result.stderr)}")

    def remote(self, args: list[str], *, auth: Auth, timeout: float, repo: Repository, op: str) -> Result:
        """A call that talks to the server: its failure becomes one classified, redacted error."""
        name = repo_label(repo)
        started = time.monotonic()
        try:
            result = self.run([*auth.config, *args], env=auth.env, timeout=timeout, cwd=self.workdir())
        except Timeout:
            raise TransientSourceError(
                f"{name}: git {op} did not finish within {timeout:g}s (server unreachable or too slow)"
            ) from None
        log.debug("git %s for %s: exit %d in %.2fs", op, name, result.returncode, time.monotonic() - started)
        if result.returncode != 0:
            stderr = redact_text(result.stderr, auth.secrets)
            log.debug("git %s for %s failed: %s", op, name, stderr.strip())
            raise classify(name, repo, op, stderr, auth)
        return result

    def cat_file(self, mirror: Path) -> subprocess.Popen[bytes]:
        """A ``cat-file --batch`` process reading objects of ``mirror``; the caller closes it."""
        git = shutil.which("git")
        if git is None:
            raise SourceError("git is not installed (Debian package git)")
        return subprocess.Popen(
            [git, "--git-dir", str(mirror), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.workdir(),
            start_new_session=True,
        )
