"""The Git source stage, and the only module of slipway that runs git.

Each repository has one bare mirror under the cache, ``<cache>/git/<repo id>/<url hash>.git``,
holding only the tracked branch. ``remote_head`` asks the server with ``git ls-remote`` and
downloads nothing; ``fetch`` updates the mirror under a thread lock and a file lock. A new mirror
is built in a temporary directory and renamed into place, and git updates refs of an existing
mirror atomically, so a failed fetch leaves the previous mirror as it was. ``materialize`` writes
one path of one revision straight from the mirror's objects (``ls-tree`` and ``cat-file
--batch``): no work tree, no checkout of the rest of the repository, and no ``.gitattributes``
export filters rewriting what gets deployed. The files land at their repository paths under the
destination, and symlinks that would lead outside the repository (and so outside the destination)
are refused.

Secrets never reach an argv, a URL or a file that outlives the git call: HTTPS usernames and
passwords travel in the child's environment to a small askpass helper that contains none, and an
SSH key text lives in a 0600 file only while git runs. SSH host keys are checked against the
repository's ``known_hosts``, or trusted on first use and pinned per repository. Git's stderr is
mapped to :class:`~slipway.errors.SourceError` subclasses in one place, :func:`_classify`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import unquote

from .. import settings
from ..errors import HostKeyError, SourceAuthError, SourceError, TransientSourceError
from ..model import ID_RE, Repository

log = logging.getLogger("slipway.source")
_T = TypeVar("_T")

__all__ = ["GitSource", "clean_target_path", "redact_url"]

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")
_BRANCH_RE = re.compile(r"^[^\s~^:?*\[\\\x00-\x1f\x7f-][^\s~^:?*\[\\\x00-\x1f\x7f]*$")

# The askpass helper holds no secret: git runs it with the prompt as $1 and it answers from the
# environment slipway gave that one git process.
_ASKPASS = """#!/bin/sh
# slipway askpass helper: answers git's prompts from the environment of the calling git process.
case "$1" in
  [Uu]sername*) printf '%s\\n' "$SLIPWAY_GIT_USERNAME" ;;
  *) printf '%s\\n' "$SLIPWAY_GIT_PASSWORD" ;;
esac
"""

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

_MIRROR_CONFIG = (
    # gc in the foreground, inside our lock, not detached and racing the next fetch
    ("gc.autoDetach", "false"),
    # The branch's reflog keeps every commit it ever pointed to, so a revision that was deployed
    # can be materialized again (rollback) even after a force push removed it from the branch.
    ("core.logAllRefUpdates", "always"),
    ("gc.reflogExpire", "never"),
    ("gc.reflogExpireUnreachable", "never"),
)

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
_TRANSIENT = (
    "could not resolve host",
    "could not resolve hostname",
    "temporary failure in name resolution",
    "name or service not known",
    "connection refused",
    "connection timed out",
    "operation timed out",
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


def redact_url(url: str) -> str:
    """``url`` without a password, and without any user name of an http(s) URL (it may be a token).

    ``https://user:secret@host/x.git`` -> ``https://host/x.git``; ``ssh://git@host/x.git`` keeps
    ``git@`` (a user name, not a secret) but drops ``:password`` if one was written.
    """
    m = _URL_USERINFO.match(url)
    if not m:
        return url
    scheme = m.group("scheme")
    user, sep, _password = m.group("userinfo").partition(":")
    if scheme.lower().startswith(("ssh", "git+ssh")) and user and not sep:
        return url
    keep = f"{user}@" if scheme.lower().startswith(("ssh", "git+ssh")) and user else ""
    return f"{scheme}{keep}{url[m.end() :]}"


def clean_target_path(target_path: str, what: str = "target_path") -> str:
    """A repository-relative path, normalized (``""`` is the root); absolute paths and ``..`` refused."""
    raw = target_path or ""
    if "\x00" in raw or "\n" in raw:
        raise SourceError(f"{what}: {raw!r} contains a control character")
    if raw.startswith("/") or raw.startswith("\\") or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise SourceError(f"{what}: {raw!r} is an absolute path; give a path relative to the repository root")
    parts = [p for p in raw.strip().split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceError(f"{what}: {raw!r} leaves the repository; '..' is not allowed")
    return "/".join(parts)


def _redact_text(text: str, secret_values: tuple[str, ...] = ()) -> str:
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    for value in secret_values:
        if value and len(value) >= 3:
            text = text.replace(value, "***")
    return text


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """The URL git is given, and an http(s) URL's embedded user and password, which travel like credentials."""
    m = _URL_USERINFO.match(url)
    if not m or not m.group("scheme").lower().startswith(("http://", "https://")):
        return redact_url(url), None, None
    user, sep, password = m.group("userinfo").partition(":")
    return f"{m.group('scheme')}{url[m.end() :]}", unquote(user), unquote(password) if sep else ""


def _ssh_path(path: Path) -> str:
    # ssh splits option values at spaces and expands %-tokens in file names (even with -i)
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _looks_like_key(value: str) -> bool:
    return "-----BEGIN" in value or "\n" in value.strip()


def _looks_like_known_hosts(value: str) -> bool:
    first = value.strip().splitlines()[0] if value.strip() else ""
    return "\n" in value.strip() or len(first.split()) >= 3


@dataclass
class _Auth:
    """How one git call authenticates: extra ``-c`` options, environment, values to scrub from output."""

    url: str
    config: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    kind: str = "none"
    known_hosts_file: Path | None = None
    tofu: bool = False


@dataclass
class _Result:
    returncode: int
    stdout: bytes
    stderr: str


class _Timeout(TransientSourceError):
    """A git call ran out of time (its whole process group has been killed)."""


_locks_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def _thread_lock(path: Path) -> threading.Lock:
    with _locks_guard:
        return _thread_locks.setdefault(str(path), threading.Lock())


class GitSource:
    """Mirrors, revisions and files of the repositories slipway deploys from."""

    def __init__(self, cache_dir: Path | None = None, home: Path | None = None) -> None:
        self.cache_dir = (Path(cache_dir) if cache_dir is not None else settings.git_cache()).absolute()
        self.home = (Path(home) if home is not None else settings.home()).absolute()
        self._memo_cache: OrderedDict[tuple[str, str], Future[Any]] = OrderedDict()
        self._memo_lock = threading.Lock()

    # -- public ------------------------------------------------------------------------------------

    def remote_head(self, repo: Repository, timeout: float = 30) -> str:
        """The commit the tracked branch points at on the server, without fetching anything."""
        self._check(repo)
        ref = f"refs/heads/{repo.branch}"
        with self._auth(repo, timeout) as auth:
            result = self._git(
                [*auth.config, "ls-remote", "--end-of-options", auth.url, ref],
                env=auth.env,
                timeout=timeout,
                cwd=self._workdir(),
                repo=repo,
                op="ls-remote",
                auth=auth,
            )
        for line in result.stdout.decode("utf-8", "replace").splitlines():
            sha, _, name = line.partition("\t")
            if name == ref and _SHA_RE.match(sha):
                return sha
        raise SourceError(f'{self._name(repo)}: branch "{repo.branch}" does not exist')

    def fetch(self, repo: Repository, timeout: float = 120, *, want: str | None = None) -> str:
        """Bring the mirror's tracked branch up to date with the server; return its commit.

        With ``want``, a mirror that has that revision by the time the lock is ours is not fetched
        again: workflows of one repository that all found it missing share the first one's fetch.
        """
        self._check(repo)
        deadline = time.monotonic() + timeout
        mirror = self._mirror(repo)
        with self._locked(repo, mirror, deadline):
            if not self._is_mirror(mirror):
                self._fetch_new(repo, mirror, deadline)
            elif want is None or self._resolve(mirror, want) is None:
                self._fetch_existing(repo, mirror, deadline)
            sha = self._local_head(mirror, repo.branch)
        if sha is None:  # pragma: no cover - a successful fetch always writes the ref
            raise SourceError(f'{self._name(repo)}: fetched, but branch "{repo.branch}" is missing in the mirror')
        log.debug("fetched %s: %s is at %s", self._name(repo), repo.branch, sha)
        return sha

    def materialize(self, repo: Repository, revision: str, target_path: str, dest: Path) -> Path:
        """Write ``target_path`` at ``revision`` into ``dest`` (at the same relative path); return that directory.

        Only that path is read from the mirror. If ``target_path`` is a single file, it is written
        alone and its directory is returned. The mirror is fetched first when it does not exist
        yet or does not know ``revision``.
        """
        self._check(repo)
        name = self._name(repo)
        path = clean_target_path(target_path, f"{name}: target_path")
        if not revision or revision.startswith("-") or any(c.isspace() for c in revision) or "\x00" in revision:
            raise SourceError(f"{name}: {revision!r} is not a valid revision")
        mirror = self._mirror(repo)
        sha = self._resolve(mirror, revision) if self._is_mirror(mirror) else None
        if sha is None:
            self.fetch(repo, want=revision)
            sha = self._resolve(mirror, revision)
        if sha is None:
            raise SourceError(
                f'{name}: revision {revision!r} does not exist on branch "{repo.branch}" (fetched just now)'
            )
        where = f'{name}: target_path "{path or "/"}" at revision {revision}' + (
            f" ({sha[:12]})" if sha != revision else ""
        )
        mode, kind, oid = self._entry(mirror, sha, path, where)
        dest = Path(dest)
        root = dest / path if path else dest
        writer = _Writer(self, mirror, where, path)
        try:
            if kind == "tree":
                writer.mkdir(root)
                for emode, ekind, eoid, ename in self._ls_tree(mirror, oid, recursive=True):
                    writer.entry(root, ename, emode, ekind, eoid)
                writer.check_links(dest)
                result = root
            else:
                writer.mkdir(root.parent)
                writer.entry(root.parent, root.name, mode, kind, oid)
                result = root.parent
        except OSError as e:
            writer.undo()
            raise SourceError(f"{where}: cannot write into {dest}: {e.strerror or e}") from e
        except BaseException:
            writer.undo()
            raise
        finally:
            writer.close()
        log.debug("materialized %s: %d files", where, writer.files)
        return result

    @contextlib.contextmanager
    def checkout(self, repo: Repository, revision: str, target_path: str) -> Iterator[Path]:
        """A temporary directory with ``target_path`` materialized at ``revision``, removed on exit."""
        tmp = Path(tempfile.mkdtemp(prefix="checkout-", dir=self._tmpdir()))
        try:
            yield self.materialize(repo, revision, target_path, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def forget(self, repo_id: str) -> None:
        """Remove a repository's mirror(s). Its pinned SSH host key stays (see :meth:`forget_host_keys`)."""
        if not ID_RE.match(repo_id or ""):
            raise SourceError(f"{repo_id!r} is not a valid repository id")
        base = self.cache_dir / repo_id
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
        log.debug("forgot the mirror of repository %s", repo_id)

    def forget_host_keys(self, repo_id: str) -> None:
        """Drop the SSH host key trusted on first use for ``repo_id``; the next fetch trusts anew."""
        if not ID_RE.match(repo_id or ""):
            raise SourceError(f"{repo_id!r} is not a valid repository id")
        with contextlib.suppress(FileNotFoundError):
            (self.home / "known_hosts" / repo_id).unlink()

    def mirror_path(self, repo: Repository) -> Path:
        """Where ``repo``'s bare mirror lives (it may not exist yet)."""
        self._check(repo)
        return self._mirror(repo)

    # -- mirrors -----------------------------------------------------------------------------------

    def _mirror(self, repo: Repository) -> Path:
        clean, _, _ = _split_userinfo(repo.url)
        digest = hashlib.sha256(redact_url(clean).encode()).hexdigest()[:16]
        return self.cache_dir / repo.id / f"{digest}.git"

    @staticmethod
    def _is_mirror(mirror: Path) -> bool:
        return (mirror / "HEAD").is_file() and (mirror / "objects").is_dir()

    def _fetch_existing(self, repo: Repository, mirror: Path, deadline: float) -> None:
        before = self._local_head(mirror, repo.branch)
        try:
            self._fetch_into(repo, mirror, deadline)
        except SourceError:
            # git updates refs atomically, but make sure what we served before is still there.
            if before is not None and self._resolve(mirror, before) != before:
                log.warning("mirror %s lost %s after a failed fetch; it will be cloned afresh", mirror, before)
                shutil.rmtree(mirror, ignore_errors=True)
            raise

    def _fetch_new(self, repo: Repository, mirror: Path, deadline: float) -> None:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        for stale in mirror.parent.glob(f".tmp-{mirror.stem}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a process that died; we hold the lock
        tmp = mirror.parent / f".tmp-{mirror.stem}-{secrets.token_hex(4)}"
        try:
            self._plain_git(["init", "--bare", "--quiet", f"--initial-branch={repo.branch}", str(tmp)], repo)
            for key, value in _MIRROR_CONFIG:
                self._plain_git(["--git-dir", str(tmp), "config", key, value], repo)
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
        with self._auth(repo, timeout) as auth:
            self._git(
                [
                    *auth.config,
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
                env=auth.env,
                timeout=timeout,
                cwd=self._workdir(),
                repo=repo,
                op="fetch",
                auth=auth,
            )

    def _local_head(self, git_dir: Path, branch: str) -> str | None:
        return self._resolve(git_dir, f"refs/heads/{branch}")

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

    def _resolve(self, git_dir: Path, revision: str) -> str | None:
        if _SHA_RE.match(revision):
            # A commit the mirror lacks may arrive with the next fetch: only a found one is kept.
            return self._memo(
                (str(git_dir), "commit " + revision),
                lambda: self._resolve_now(git_dir, revision),
                keep=lambda sha: sha is not None,
            )
        return self._resolve_now(git_dir, revision)

    def _resolve_now(self, git_dir: Path, revision: str) -> str | None:
        result = self._run(
            [
                "--git-dir",
                str(git_dir),
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                f"{revision}^{{commit}}",
            ],
            env=self._env(),
            timeout=30,
        )
        sha = result.stdout.decode().strip()
        return sha if result.returncode == 0 and _SHA_RE.match(sha) else None

    @contextlib.contextmanager
    def _locked(self, repo: Repository, mirror: Path, deadline: float) -> Iterator[None]:
        mirror.parent.mkdir(parents=True, exist_ok=True)
        with self._lockfile(mirror.with_suffix(".lock"), deadline, self._name(repo)):
            yield

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

    # -- trees -------------------------------------------------------------------------------------

    def _ls_tree(self, mirror: Path, treeish: str, *, recursive: bool) -> list[tuple[str, str, str, str]]:
        if _SHA_RE.match(treeish[:40]) and treeish[40:41] in ("", ":", "^"):
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
        result = self._run([*args, "--end-of-options", treeish], env=self._env(), timeout=120)
        if result.returncode != 0:
            raise _Missing(result.stderr)
        out = []
        for record in result.stdout.split(b"\0"):
            if not record:
                continue
            meta, _, name = record.partition(b"\t")
            mode, kind, oid = meta.decode().split(" ")
            out.append((mode, kind, oid, os.fsdecode(name)))
        return out

    def _entry(self, mirror: Path, sha: str, path: str, where: str) -> tuple[str, str, str]:
        if not path:
            return "040000", "tree", f"{sha}^{{tree}}"
        parent, _, base = path.rpartition("/")
        try:
            entries = self._ls_tree(mirror, f"{sha}:{parent}" if parent else f"{sha}^{{tree}}", recursive=False)
        except _Missing:
            entries = []
        for mode, kind, oid, ename in entries:
            if ename != base:
                continue
            if mode == "120000":
                raise SourceError(f"{where} is a symbolic link; give the path it points to")
            if kind == "commit":
                raise SourceError(f"{where} is a Git submodule, which slipway does not fetch")
            return mode, kind, oid
        raise SourceError(f"{where} does not exist")

    # -- running git -------------------------------------------------------------------------------

    def _name(self, repo: Repository) -> str:
        return f"repository {repo.id} ({redact_url(repo.url)})"

    def _check(self, repo: Repository) -> None:
        if not isinstance(repo.id, str) or not ID_RE.match(repo.id):
            raise SourceError(f"repository {repo.id!r}: not a valid repository id")
        url = repo.url or ""
        if not url.strip() or url.startswith("-") or any(c in url for c in "\x00\n\r"):
            raise SourceError(f"repository {repo.id} ({redact_url(url)!r}): not a valid Git URL")
        branch = repo.branch or ""
        if not _BRANCH_RE.match(branch) or ".." in branch or branch.endswith((".lock", "/", ".")) or "@{" in branch:
            raise SourceError(f"{self._name(repo)}: {branch!r} is not a valid branch name")

    def _workdir(self) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return self.cache_dir

    def _tmpdir(self) -> Path:
        tmp = self.cache_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o700)
        return tmp

    def _askpass(self) -> Path:
        path = self.cache_dir / "askpass.sh"
        with contextlib.suppress(OSError):
            if path.read_text() == _ASKPASS and os.access(path, os.X_OK):
                return path
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".askpass-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(fd, "w") as out:
            out.write(_ASKPASS)
        os.replace(tmp, path)
        return path

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Traces would land in the stderr we log and quote, with HTTP auth headers in them.
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in _REPO_ENV and not k.startswith(("GIT_TRACE", "GIT_CURL_VERBOSE", "GIT_REDACT"))
        }
        env.pop("SSH_ASKPASS", None)
        env.pop("LANGUAGE", None)
        env["LC_ALL"] = "C"  # git's and ssh's messages in English, for _classify
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GIT_ASKPASS"] = ""  # an empty askpass: no GUI prompt from the user's environment
        # Keep repository discovery out of whatever directory contains the cache.
        env["GIT_CEILING_DIRECTORIES"] = str(self.cache_dir.parent)
        env.update(extra or {})
        return env

    @contextlib.contextmanager
    def _auth(self, repo: Repository, timeout: float) -> Iterator[_Auth]:
        url, url_user, url_password = _split_userinfo(repo.url)
        creds = repo.credentials
        if creds is None and url_user is None:
            yield _Auth(url=url, env=self._env())
            return
        if creds is None or creds.type in ("token", "userpass"):
            if creds is None:
                username, password, kind = url_user or "", url_password or "", "userpass"
            elif creds.type == "token":
                username, password, kind = creds.username or "x-access-token", creds.token or "", "token"
            else:
                username, password, kind = creds.username or "", creds.password or "", "userpass"
            env = self._env(
                {
                    "GIT_ASKPASS": str(self._askpass()),
                    "SLIPWAY_GIT_USERNAME": username,
                    "SLIPWAY_GIT_PASSWORD": password,
                }
            )
            # An empty credential.helper resets the list: nothing asks the user's helpers, nothing is stored.
            yield _Auth(url=url, config=["-c", "credential.helper="], env=env, secrets=(password,), kind=kind)
            return
        if creds.type != "ssh":
            raise SourceError(f"{self._name(repo)}: unknown credentials type {creds.type!r}")
        with self._ssh(repo, url, timeout) as auth:
            yield auth

    @contextlib.contextmanager
    def _ssh(self, repo: Repository, url: str, timeout: float) -> Iterator[_Auth]:
        creds = repo.credentials
        assert creds is not None
        name = self._name(repo)
        key_value = creds.ssh_key or ""
        tmp = Path(tempfile.mkdtemp(prefix="ssh-", dir=self._tmpdir()))
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
                known_dir = self.home / "known_hosts"
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
            ]
            env = self._env({"GIT_SSH_COMMAND": shlex.join(command), "GIT_SSH_VARIANT": "ssh"})
            yield _Auth(url=url, env=env, kind="ssh", known_hosts_file=known_file, tofu=tofu)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _plain_git(self, args: list[str], repo: Repository) -> None:
        result = self._run(args, env=self._env(), timeout=60)
        if result.returncode != 0:
            raise SourceError(f"{self._name(repo)}: git {args[0]} failed: {_last_line(result.stderr)}")

    def _git(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        timeout: float,
        cwd: Path,
        repo: Repository,
        op: str,
        auth: _Auth,
    ) -> _Result:
        started = time.monotonic()
        try:
            result = self._run(args, env=env, timeout=timeout, cwd=cwd)
        except _Timeout:
            raise TransientSourceError(
                f"{self._name(repo)}: git {op} did not finish within {timeout:g}s (server unreachable or too slow)"
            ) from None
        log.debug(
            "git %s for %s: exit %d in %.2fs", op, self._name(repo), result.returncode, time.monotonic() - started
        )
        if result.returncode != 0:
            stderr = _redact_text(result.stderr, auth.secrets)
            log.debug("git %s for %s failed: %s", op, self._name(repo), stderr.strip())
            raise _classify(self._name(repo), repo, op, stderr, auth)
        return result

    def _run(self, args: list[str], *, env: dict[str, str], timeout: float, cwd: Path | None = None) -> _Result:
        git = shutil.which("git", path=env.get("PATH"))
        if git is None:
            raise SourceError("git is not installed (Debian package git)")
        # A session of its own: no controlling terminal for ssh to prompt on, and one process
        # group to kill (git and its ssh or remote-https helpers) when the time is up.
        proc = subprocess.Popen(
            [git, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd or self._workdir(),
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise _Timeout(f"git did not finish within {timeout:g}s") from None
        except BaseException:
            _kill_group(proc)
            raise
        return _Result(proc.returncode, out, err.decode("utf-8", "replace"))

    def _cat_file(self, mirror: Path) -> subprocess.Popen[bytes]:
        git = shutil.which("git")
        if git is None:
            raise SourceError("git is not installed (Debian package git)")
        return subprocess.Popen(
            [git, "--git-dir", str(mirror), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self._env(),
            cwd=self._workdir(),
            start_new_session=True,
        )


class _Missing(Exception):
    pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=5)


def _last_line(stderr: str) -> str:
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
    return _last_line(stderr)


def _classify(name: str, repo: Repository, op: str, stderr: str, auth: _Auth) -> SourceError:
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
    if any(s in low for s in _TRANSIENT):
        return TransientSourceError(f"{name}: cannot reach the Git server: {_reason(stderr, _TRANSIENT)}")
    if any(s in low for s in _NO_REPO):
        return SourceError(f"{name}: there is no Git repository at this URL, or no access to it")
    return SourceError(f"{name}: git {op} failed: {_last_line(stderr)}")


class _Writer:
    """Writes tree entries under one root, remembers what it created, and can take it all back."""

    def __init__(self, source: GitSource, mirror: Path, where: str, prefix: str) -> None:
        self.source = source
        self.mirror = mirror
        self.where = where
        self.prefix = prefix  # where the written root sits in the repository (and in dest)
        self.created: list[Path] = []
        self.links: list[tuple[Path, str]] = []
        self.files = 0
        self._batch: subprocess.Popen[bytes] | None = None

    def mkdir(self, path: Path) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            self.created.append(d)

    def entry(self, root: Path, rel: str, mode: str, kind: str, oid: str) -> None:
        parts = rel.split("/")
        if any(p in ("", ".", "..", ".git") for p in parts) or "\x00" in rel:
            raise SourceError(f"{self.where}: the tree holds an unsafe path {rel!r}")
        path = root.joinpath(*parts)
        if kind == "commit":
            log.debug("%s: skipping submodule %s", self.where, rel)
            return
        self.mkdir(path.parent)
        if mode == "120000":
            target = self.blob(oid).decode("utf-8", "surrogateescape")
            self._check_link(rel, target)
            os.symlink(target, path)
            self.created.append(path)
            self.links.append((path, rel))
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if mode == "100755" else 0o644)
        self.created.append(path)
        with os.fdopen(fd, "wb") as out:
            self.blob(oid, out)
        self.files += 1

    def _check_link(self, rel: str, target: str) -> None:
        # dest mirrors the repository's layout, so "inside the repository" is "inside dest".
        outside = f"{self.where}: symlink {rel!r} points to {target!r}, outside the repository"
        if not target or target.startswith("/") or "\x00" in target:
            raise SourceError(outside)
        in_repo = os.path.normpath(os.path.join(self.prefix, os.path.dirname(rel), target))
        if in_repo == ".." or in_repo.startswith("../"):
            raise SourceError(outside)
        if self.prefix and not (in_repo + "/").startswith(self.prefix + "/"):
            log.debug("%s: symlink %s points to %s, which is not materialized with it", self.where, rel, in_repo)

    def check_links(self, dest: Path) -> None:
        # Each link was checked on its own; a link through another link can still climb out.
        real_dest = os.path.realpath(dest)
        for path, rel in self.links:
            real = os.path.realpath(path)
            if real != real_dest and not real.startswith(real_dest + os.sep):
                raise SourceError(f"{self.where}: symlink {rel!r} resolves to {real!r}, outside the repository")

    def blob(self, oid: str, out: IO[bytes] | None = None) -> bytes:
        if self._batch is None:
            self._batch = self.source._cat_file(self.mirror)
        proc = self._batch
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(oid.encode() + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline().decode().split()
        if len(header) != 3 or header[1] != "blob":
            raise SourceError(f"{self.where}: object {oid} is missing from the mirror")
        size = int(header[2])
        chunks: list[bytes] = []
        while size:
            chunk = proc.stdout.read(min(size, 1 << 20))
            if not chunk:
                raise SourceError(f"{self.where}: git cat-file stopped while reading {oid}")
            size -= len(chunk)
            if out is None:
                chunks.append(chunk)
            else:
                out.write(chunk)
        proc.stdout.read(1)  # the newline after each object
        return b"".join(chunks)

    def undo(self) -> None:
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()

    def close(self) -> None:
        if self._batch is not None:
            proc, self._batch = self._batch, None
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
