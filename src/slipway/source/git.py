"""The Git source stage: :class:`GitSource`, what the engine calls.

It checks what it is given (repository id, URL, branch, revision, target path) before any git
process runs, and leaves the work to the modules of this package: :mod:`.mirror` (mirrors, their
locks, fetches and what git said about their objects), :mod:`.tree` (writing one path of one
revision without ever writing through a link), :mod:`.auth` (credentials and SSH host keys),
:mod:`.process` (running git) and :mod:`.classify` (what git's complaints mean). This package is
the only part of slipway that runs git.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .. import settings
from ..errors import SourceError
from ..model import ID_RE, Repository
from ..urls import redact_url
from .auth import git_url
from .classify import repo_label
from .mirror import Mirrors
from .process import FETCH_TIMEOUT, Git
from .tree import clean_target_path, write

log = logging.getLogger("slipway.source")

__all__ = ["GitSource", "clean_target_path", "redact_url"]

_BRANCH_RE = re.compile(r"^[^\s~^:?*\[\\\x00-\x1f\x7f-][^\s~^:?*\[\\\x00-\x1f\x7f]*$")


_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_ANCESTRY = re.compile(r"(?P<base>[^~^\s]+)(?P<up>(?:[~^][0-9]{0,4})+)")


class GitSource:
    """Mirrors, revisions and files of the repositories slipway deploys from.

    Mirrors live under ``cache_dir`` (default :func:`slipway.settings.git_cache`, inside the home),
    SSH host keys trusted on first use under ``home``.
    """

    def __init__(self, cache_dir: Path | None = None, home: Path | None = None) -> None:
        self.cache_dir = (Path(cache_dir) if cache_dir is not None else settings.git_cache()).absolute()
        self.home = (Path(home) if home is not None else settings.home()).absolute()
        self._git = Git(self.cache_dir)
        self._mirrors = Mirrors(self._git, self.home)

    def remote_head(self, repo: Repository, timeout: float = 30) -> str:
        """The commit the tracked branch points at on the server, without fetching anything."""
        self._check(repo)
        return self._mirrors.remote_head(repo, timeout)

    def fetch(self, repo: Repository, timeout: float = FETCH_TIMEOUT, *, want: str | None = None) -> str:
        """Bring the mirror's tracked branch up to date with the server; return its commit.

        With ``want``, a mirror that has that revision by the time the lock is ours is not fetched
        again: workflows of one repository that all found it missing share the first one's fetch.
        """
        self._check(repo)
        sha = self._mirrors.fetch(repo, timeout, want)
        log.debug("fetched %s: %s is at %s", repo_label(repo), repo.branch, sha)
        return sha

    def revision(self, repo: Repository, ref: str, timeout: float = FETCH_TIMEOUT) -> str:
        """The commit ``ref`` (a branch, a tag, a commit id, or ``refs/...``) names on the server,
        fetched into the mirror if it is not there yet."""
        self._check(repo)
        ancestry = _ANCESTRY.fullmatch(ref)
        if ancestry is not None:  # HEAD~3, main^, v1.2~1, <commit>~2: git's own words for an ancestor
            base = repo.branch if ancestry["base"] == "HEAD" else ancestry["base"]
            sha = self.revision(repo, base, timeout)
            found = self._mirrors.resolve(self._mirrors.path(repo), sha + ancestry["up"])
            if found is None:
                raise SourceError(f"{repo_label(repo)}: {ref!r}: {sha[:12]} has no such ancestor")
            return found
        if ref == "HEAD":
            return self.fetch(repo, timeout)
        bad = not ref or ref.startswith("-") or ".." in ref or "@{" in ref
        if bad or any(c.isspace() or c in "~^:?*[\\" or ord(c) < 32 for c in ref):
            raise SourceError(f"{repo_label(repo)}: {ref!r} is not a valid branch, tag or commit")
        if ref in (repo.branch, f"refs/heads/{repo.branch}"):
            return self.fetch(repo, timeout)
        return self._mirrors.fetch_ref(repo, ref, timeout)

    def on_branch(self, repo: Repository, revision: str, timeout: float = FETCH_TIMEOUT) -> tuple[str | None, bool]:
        """The commit ``revision`` names in the mirror (None: it has none) and whether the tracked
        branch reaches it, with the branch fetched first: a commit force-pushed away, or one only
        on another branch (fetched by ``diff --revision``), is in the mirror but not on the branch."""
        self._check(repo)
        if not revision or revision.startswith("-") or any(c.isspace() for c in revision) or "\x00" in revision:
            raise SourceError(f"{repo_label(repo)}: {revision!r} is not a valid revision")
        head = self.fetch(repo, timeout)
        mirror = self._mirrors.path(repo)
        sha = self._mirrors.resolve(mirror, revision)
        if sha is None:
            return None, False
        return sha, sha == head or self._mirrors.is_ancestor(mirror, sha, f"refs/heads/{repo.branch}")

    def commit_info(self, repo: Repository, revision: str) -> dict[str, str] | None:
        """The subject (first line of the message) and author (``Name <email>``) of a commit the
        mirror holds, as the history shows them; None when the mirror has no such commit. Nothing is
        fetched: a sync reads it right after its fetch."""
        self._check(repo)
        if not revision or not _SHA.match(revision):
            return None
        return self._mirrors.commit_info(self._mirrors.path(repo), revision)

    def materialize(self, repo: Repository, revision: str, target_path: str, dest: Path) -> Path:
        """Write ``target_path`` at ``revision`` into ``dest`` (at the same relative path); return that directory.

        Only that path is read from the mirror. If ``target_path`` is a single file, it is written
        alone and its directory is returned. The mirror is fetched first when it does not exist
        yet or does not know ``revision``.
        """
        self._check(repo)
        name = repo_label(repo)
        path = clean_target_path(target_path, f"{name}: target_path")
        if not revision or revision.startswith("-") or any(c.isspace() for c in revision) or "\x00" in revision:
            raise SourceError(f"{name}: {revision!r} is not a valid revision")
        mirror = self._mirrors.path(repo)
        sha = self._mirrors.resolve(mirror, revision) if self._mirrors.exists(mirror) else None
        if sha is None:
            self.fetch(repo, want=revision)
            sha = self._mirrors.resolve(mirror, revision)
        if sha is None:
            raise SourceError(
                f'{name}: revision {revision!r} does not exist on branch "{repo.branch}" (fetched just now)'
            )
        where = f'{name}: target_path "{path or "/"}" at revision {revision}' + (
            f" ({sha[:12]})" if sha != revision else ""
        )
        root, files = write(self._mirrors, mirror, sha, path, Path(dest), where)
        log.debug("materialized %s: %d files", where, files)
        return root

    @contextlib.contextmanager
    def checkout(self, repo: Repository, revision: str, target_path: str) -> Iterator[Path]:
        """A temporary directory with ``target_path`` materialized at ``revision``, removed on exit."""
        tmp = Path(tempfile.mkdtemp(prefix="checkout-", dir=self._git.tmpdir()))
        try:
            yield self.materialize(repo, revision, target_path, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        """Close the connections kept open for ref checks (kept SSH connections, idle HTTP ones)."""
        self._mirrors.refs.close()

    def forget(self, repo_id: str) -> None:
        """Remove a repository's mirror(s). Its pinned SSH host key stays (see :meth:`forget_host_keys`)."""
        self._mirrors.forget(repo_id)
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
        return self._mirrors.path(repo)

    def _check(self, repo: Repository) -> None:
        if not isinstance(repo.id, str) or not ID_RE.match(repo.id):
            raise SourceError(f"repository {repo.id!r}: not a valid repository id")
        url = repo.url or ""
        if not url.strip() or url.startswith("-") or any(c in url for c in "\x00\n\r"):
            raise SourceError(f"repository {repo.id} ({redact_url(url)!r}): not a valid Git URL")
        git_url(repo)  # a secret that cannot be taken out of the URL is refused before git runs
        branch = repo.branch or ""
        if not _BRANCH_RE.match(branch) or ".." in branch or branch.endswith((".lock", "/", ".")) or "@{" in branch:
            raise SourceError(f"{repo_label(repo)}: {branch!r} is not a valid branch name")
