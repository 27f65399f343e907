"""The mirrors: one bare repository per repository and URL, holding only the tracked branch.

A mirror lives at ``<cache>/<repository id>/<hash of the URL>.git``. Fetches of one mirror take a
thread lock and a file lock (``<hash>.lock``), so threads and processes wait for each other; a
new mirror is built in a temporary directory and renamed into place, and git updates refs of an
existing one atomically, so a failed fetch leaves the previous mirror as it was. Every fetch has
git check the objects it receives (``fetch.fsckObjects``): a tree a hostile server crafted (two
entries of one name, a ``.git`` path) is refused before anything is written from it. What git
says about an object named by its commit id never changes, so those answers are remembered.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SourceError, TransientSourceError
from ..model import ID_RE, Repository
from .auth import authenticate, git_url
from .classify import last_line, repo_label
from .process import STALL_SECONDS, Git
from .refs import RefReader, local_ref

log = logging.getLogger("slipway.source")
_T = TypeVar("_T")

SHA_RE = re.compile(r"^[0-9a-f]{40}$")

_MIRROR_CONFIG = (
    # gc in the foreground, inside our lock, not detached and racing the next fetch
    ("gc.autoDetach", "false"),
    # The branch's reflog keeps every commit it ever pointed to, so a revision that was deployed
    # can be materialized again (rollback) even after a force push removed it from the branch.
    ("core.logAllRefUpdates", "always"),
    ("gc.reflogExpire", "never"),
    ("gc.reflogExpireUnreachable", "never"),
    ("fetch.fsckObjects", "true"),
    ("transfer.fsckObjects", "true"),
)
# Given on every fetch as well: a mirror made before the checks were configured gets them too.
_FETCH_CHECKS = ["-c", "fetch.fsckObjects=true", "-c", "transfer.fsckObjects=true"]

_locks_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def _thread_lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _thread_locks.setdefault(str(path), threading.Lock())


class Missing(Exception):
    """git could not list a tree-ish (it is not in the mirror)."""


class Mirrors:
    """The mirrors under ``git.cache_dir``, their locks, and what git said about their objects."""

    def __init__(self, git: Git, home: Path) -> None:
        self.git = git
        self.home = home
        self.refs = RefReader(git, home)
        self._memo_cache: OrderedDict[tuple[str, str], Future[Any]] = OrderedDict()
        self._memo_lock = threading.Lock()

    def path(self, repo: Repository) -> Path:
        digest = hashlib.sha256(git_url(repo).encode()).hexdigest()[:16]
        return self.git.cache_dir / repo.id / f"{digest}.git"

    @staticmethod
    def exists(mirror: Path) -> bool:
        return (mirror / "HEAD").is_file() and (mirror / "objects").is_dir()

    # -- the server ---------------------------------------------------------------------------------

    def remote_head(self, repo: Repository, timeout: float) -> str:
        """The branch's commit on the server: asked in-process when that can be done as git would
        (:mod:`.refs`), else with ``git ls-remote``."""
        sha = self.refs.head(repo, timeout)
        if sha is not None:
            return sha
        return self.ls_remote(repo, timeout)

    def ls_remote(self, repo: Repository, timeout: float) -> str:
        ref = f"refs/heads/{repo.branch}"
        with authenticate(self.git, self.home, repo, timeout) as auth:
            result = self.git.remote(
                ["ls-remote", "--end-of-options", auth.url, ref], auth=auth, timeout=timeout, repo=repo, op="ls-remote"
            )
        for line in result.stdout.decode("utf-8", "replace").splitlines():
            sha, _, name = line.partition("\t")
            if name == ref and SHA_RE.match(sha):
                return sha
        raise SourceError(f'{repo_label(repo)}: branch "{repo.branch}" does not exist')

    def fetch(self, repo: Repository, timeout: float, want: str | None) -> str:
        deadline = time.monotonic() + timeout
        mirror = self.path(repo)
        if want is None and self.exists(mirror):
            # Already there: the server's head (asked in-process) is the mirror's. No git at all.
            head = self.refs.head(repo, min(timeout, STALL_SECONDS))  # a listing of refs is small
            if head is not None and local_ref(mirror, f"refs/heads/{repo.branch}") == head:
                log.debug("%s: the mirror is at the branch's head %s; nothing to fetch", repo_label(repo), head[:12])
                return head
        mirror.parent.mkdir(parents=True, exist_ok=True)
        with self._lockfile(mirror.with_suffix(".lock"), deadline, repo_label(repo)):
            if not self.exists(mirror):
                self._fetch_new(repo, mirror, deadline)
            elif want is None or self.resolve(mirror, want) is None:
                self._fetch_existing(repo, mirror, deadline)
            sha = self.resolve(mirror, f"refs/heads/{repo.branch}")
        if sha is None:  # pragma: no cover - a successful fetch always writes the ref
            raise SourceError(f'{repo_label(repo)}: fetched, but branch "{repo.branch}" is missing in the mirror')
        return sha

    def fetch_ref(self, repo: Repository, ref: str, timeout: float) -> str:
        """Fetch another branch, a tag or a commit of ``repo`` into the mirror (under ``refs/slipway/``,
        apart from the tracked branch) and return its commit: what ``diff --revision`` plans."""
        mirror = self.path(repo)
        if not self.exists(mirror):
            self.fetch(repo, timeout, None)
        if SHA_RE.match(ref) and self.resolve(mirror, ref):
            return ref
        sources = [ref] if SHA_RE.match(ref) or ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        deadline = time.monotonic() + timeout
        with self._lockfile(mirror.with_suffix(".lock"), deadline, repo_label(repo)):
            for source in sources:
                local = "refs/slipway/review/" + hashlib.sha256(source.encode()).hexdigest()[:16]
                named = Repository(repo.id, repo.url, ref, repo.poll_interval, repo.credentials, repo.type)
                try:
                    with authenticate(self.git, self.home, repo, timeout) as auth:
                        self.git.remote(
                            [*_FETCH_CHECKS, "--git-dir", str(mirror), "fetch", "--quiet", "--no-tags",
                             "--no-write-fetch-head", "--no-recurse-submodules", "--end-of-options", auth.url,
                             f"+{source}:{local}"],
                            auth=auth, timeout=max(1.0, deadline - time.monotonic()), repo=named, op="fetch",
                        )  # fmt: skip
                except SourceError as e:
                    if "does not exist" not in e.message and "git fetch failed" not in e.message:
                        raise
                    continue
                sha = self._resolve_now(mirror, local)
                if sha is not None:
                    return sha
        raise SourceError(f"{repo_label(repo)}: no branch, tag or commit {ref!r} on the server")

    def _fetch_existing(self, repo: Repository, mirror: Path, deadline: float) -> None:
        before = self.resolve(mirror, f"refs/heads/{repo.branch}")
        try:
            self._fetch_into(repo, mirror, deadline)
        except SourceError:
            # git updates refs atomically, but make sure what we served before is still there.
            if before is not None and self.resolve(mirror, before) != before:
                log.warning("mirror %s lost %s after a failed fetch; it will be cloned afresh", mirror, before)
                shutil.rmtree(mirror, ignore_errors=True)
            raise

    def _fetch_new(self, repo: Repository, mirror: Path, deadline: float) -> None:
        for stale in mirror.parent.glob(f".tmp-{mirror.stem}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a process that died; we hold the lock
        tmp = mirror.parent / f".tmp-{mirror.stem}-{secrets.token_hex(4)}"
        try:
            self.git.plain(["init", "--bare", "--quiet", f"--initial-branch={repo.branch}", str(tmp)], repo)
            for key, value in _MIRROR_CONFIG:
                self.git.plain(["--git-dir", str(tmp), "config", key, value], repo)
            self._fetch_into(repo, tmp, deadline)
            if mirror.exists():
                shutil.rmtree(mirror)
            os.rename(tmp, mirror)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _fetch_into(self, repo: Repository, git_dir: Path, deadline: float) -> None:
        ref = f"refs/heads/{repo.branch}"
        timeout = max(1.0, deadline - time.monotonic())
        with authenticate(self.git, self.home, repo, timeout) as auth:
            self.git.remote(
                [
                    *_FETCH_CHECKS,
                    "--git-dir",
                    str(git_dir),
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    "--no-recurse-submodules",
                    "--end-of-options",
                    auth.url,
                    f"+{ref}:{ref}",
                ],
                auth=auth,
                timeout=timeout,
                repo=repo,
                op="fetch",
            )

    # -- locks --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lockfile(self, path: Path, deadline: float, what: str) -> Iterator[None]:
        # flock keeps other processes out; the thread lock keeps threads of this process in line
        # without each of them polling the file.
        tlock = _thread_lock(path)
        if not tlock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TransientSourceError(f"{what}: another fetch of this repository is still running")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TransientSourceError(
                                f"{what}: another process is still fetching this repository"
                            ) from None
                        time.sleep(0.05)
                yield
            finally:
                os.close(fd)
        finally:
            tlock.release()

    def forget(self, repo_id: str) -> None:
        if not ID_RE.match(repo_id or ""):
            raise SourceError(f"{repo_id!r} is not a valid repository id")
        base = self.git.cache_dir / repo_id
        if not base.is_dir():
            return
        for lock in sorted(base.glob("*.lock")):
            mirror = lock.with_suffix(".git")
            with self._lockfile(lock, time.monotonic() + 120, f"repository {repo_id}"):
                shutil.rmtree(mirror, ignore_errors=True)
                for tmp in base.glob(f".tmp-{mirror.stem}-*"):
                    shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
        with self._memo_lock:
            for key in [k for k in self._memo_cache if k[0].startswith(str(base) + os.sep)]:
                del self._memo_cache[key]

    # -- objects ------------------------------------------------------------------------------------

    def _memo(self, key: tuple[str, str], compute: Callable[[], _T], keep: Callable[[_T], bool] = bool) -> _T:
        """Remember what git said about an object named by a commit id: objects never change, and a
        mirror never drops a commit it had (its reflog does not expire), so workflows sharing a
        repository and revision share one answer instead of a git process each. Callers asking
        while the first is still computing wait for its answer (at a cold start a repository's
        workflows all ask at once); an answer ``keep`` rejects, or an error, is not remembered."""
        with self._memo_lock:
            pending = self._memo_cache.get(key)
            mine = pending is None
            if pending is None:
                pending = self._memo_cache[key] = Future()
                while len(self._memo_cache) > 512:
                    self._memo_cache.popitem(last=False)
            else:
                self._memo_cache.move_to_end(key)
        if mine:
            try:
                value = compute()
            except BaseException as e:
                self._memo_drop(key, pending)
                pending.set_exception(e)
                raise
            if not keep(value):
                self._memo_drop(key, pending)
            pending.set_result(value)
            return value
        return pending.result()

    def _memo_drop(self, key: tuple[str, str], pending: Future[Any]) -> None:
        with self._memo_lock:
            if self._memo_cache.get(key) is pending:
                del self._memo_cache[key]

    def resolve(self, git_dir: Path, revision: str) -> str | None:
        """The commit ``revision`` names in ``git_dir``, or None."""
        if SHA_RE.match(revision):
            # A commit the mirror lacks may arrive with the next fetch: only a found one is kept.
            return self._memo(
                (str(git_dir), "commit " + revision),
                lambda: self._resolve_now(git_dir, revision),
                keep=lambda sha: sha is not None,
            )
        return self._resolve_now(git_dir, revision)

    def _resolve_now(self, git_dir: Path, revision: str) -> str | None:
        args = ["--git-dir", str(git_dir), "rev-parse", "--verify", "--quiet", "--end-of-options"]
        result = self.git.local([*args, f"{revision}^{{commit}}"], timeout=30)
        sha = result.stdout.decode().strip()
        return sha if result.returncode == 0 and SHA_RE.match(sha) else None

    def commit_info(self, git_dir: Path, sha: str) -> dict[str, str] | None:
        """``{subject, author}`` of commit ``sha`` (a full id, so what is read never changes), or None."""
        if not self.exists(git_dir):
            return None

        def read() -> dict[str, str] | None:
            fmt = "--format=%s%x00%an <%ae>"
            result = self.git.local(["--git-dir", str(git_dir), "show", "-s", fmt, "--end-of-options", sha], timeout=30)
            if result.returncode != 0:
                return None
            subject, _, author = result.stdout.decode("utf-8", "replace").rstrip("\n").partition("\0")
            return {"subject": subject[:500], "author": author[:200]}

        return self._memo((str(git_dir), "info " + sha), read, keep=lambda v: v is not None)

    def is_ancestor(self, git_dir: Path, commit: str, ref: str) -> bool:
        """Whether ``ref`` reaches ``commit`` (a full commit id): ``git merge-base --is-ancestor``."""
        result = self.git.local(["--git-dir", str(git_dir), "merge-base", "--is-ancestor", commit, ref], timeout=60)
        if result.returncode not in (0, 1):
            raise SourceError(f"{git_dir.name}: git merge-base failed: {last_line(result.stderr)}")
        return result.returncode == 0

    def ls_tree(self, mirror: Path, treeish: str, *, recursive: bool) -> list[tuple[str, str, str, str]]:
        """``(mode, kind, object id, path)`` of each entry of ``treeish``; :class:`Missing` if there is none."""
        if SHA_RE.match(treeish[:40]) and treeish[40:41] in ("", ":", "^"):
            return self._memo(
                (str(mirror), f"ls-tree {recursive} {treeish}"),
                lambda: self._ls_tree_now(mirror, treeish, recursive=recursive),
                keep=lambda _: True,
            )
        return self._ls_tree_now(mirror, treeish, recursive=recursive)

    def _ls_tree_now(self, mirror: Path, treeish: str, *, recursive: bool) -> list[tuple[str, str, str, str]]:
        args = ["--git-dir", str(mirror), "ls-tree", "-z"]
        if recursive:
            args.append("-r")
        result = self.git.local([*args, "--end-of-options", treeish], timeout=120)
        if result.returncode != 0:
            raise Missing(result.stderr)
        out = []
        for record in result.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, oid = meta.decode().split(" ")
            out.append((mode, kind, oid, os.fsdecode(name)))
        return out
