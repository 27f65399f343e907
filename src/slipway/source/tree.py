"""Materializing one path of one revision: files written straight from a mirror's objects.

``ls-tree`` lists the path and ``cat-file --batch`` streams the blobs: no work tree, no checkout of
the rest of the repository, no ``.gitattributes`` export filters rewriting what gets deployed.
The files land at their repository paths under the destination.

Nothing is ever written through a symbolic link, so nothing lands outside the destination however
a tree is crafted. Every directory is opened relative to its parent with ``O_NOFOLLOW``, and below
the destination only directories this writer made itself are entered; symlinks are created last,
when every file is in place, and then each must resolve inside the destination. A failure takes
back everything that was written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from pathlib import Path
from typing import IO

from ..errors import SourceError
from ..paths import PathError, clean_repo_path
from .mirror import Mirrors, Missing
from .process import Git, kill_group

log = logging.getLogger("slipway.source")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean_target_path(target_path: str, what: str = "target_path") -> str:
    """A repository-relative path, normalized (``""`` is the root); absolute paths and ``..`` refused."""
    try:
        return clean_repo_path(target_path)
    except PathError as e:
        raise SourceError(f"{what}: {e}") from None


def find_entry(mirrors: Mirrors, mirror: Path, sha: str, path: str, where: str) -> tuple[str, str, str]:
    """``(mode, kind, object id)`` of ``path`` at commit ``sha``; a symlink or a submodule is refused."""
    if not path:
        return "040000", "tree", f"{sha}^{{tree}}"
    parent, _, base = path.rpartition("/")
    try:
        entries = mirrors.ls_tree(mirror, f"{sha}:{parent}" if parent else f"{sha}^{{tree}}", recursive=False)
    except Missing:
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


def write(mirrors: Mirrors, mirror: Path, sha: str, path: str, dest: Path, where: str) -> tuple[Path, int]:
    """Write ``path`` at ``sha`` under ``dest``; the directory that holds it, and how many files were written."""
    mode, kind, oid = find_entry(mirrors, mirror, sha, path, where)
    # A single file is written alone, into the directory it sits in.
    prefix = path if kind == "tree" else path.rpartition("/")[0]
    writer = Writer(mirrors.git, mirror, where, dest, prefix)
    try:
        writer.open_root()
        if kind == "tree":
            for emode, ekind, eoid, ename in mirrors.ls_tree(mirror, oid, recursive=True):
                writer.entry(ename, emode, ekind, eoid)
        else:
            writer.entry(path.rpartition("/")[2], mode, kind, oid)
        writer.finish()
    except OSError as e:
        writer.undo()
        raise SourceError(f"{where}: cannot write into {dest}: {e.strerror or e}") from e
    except BaseException:
        writer.undo()
        raise
    finally:
        writer.close()
    return writer.root, writer.files


class Writer:
    """Writes tree entries under one root, remembers what it created, and can take it all back.

    ``root`` is ``dest/<prefix>``, where ``prefix`` is where the written tree sits in the
    repository (and so in ``dest``): a link may point anywhere in the repository, not only below
    ``root``. Paths in messages are relative to the root, as ``ls-tree`` gives them.
    """

    def __init__(self, git: Git, mirror: Path, where: str, dest: Path, prefix: str) -> None:
        self.git = git
        self.mirror = mirror
        self.where = where
        self.dest = dest
        self.prefix = prefix
        self.root = dest / prefix if prefix else dest
        self.created: list[Path] = []
        self.dirs: set[str] = {""}  # directories under the root this writer made (and the root)
        self.written: set[str] = set()  # files
        self.links: dict[str, str] = {}  # path -> target, written by finish()
        self.files = 0
        self._batch: subprocess.Popen[bytes] | None = None
        self._fds: list[tuple[str, int]] = []  # open directories from the root down: (path, fd)

    # -- directories ----------------------------------------------------------------------------------

    def open_root(self) -> None:
        """Create the root where it is missing and hold it open; no link is followed below ``dest``."""
        missing = []  # the caller's directory, and what is missing above it
        p = self.dest
        while not os.path.lexists(p):
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir()
            self.created.append(d)
        fd = os.open(self.dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        walked = self.dest
        for part in self.prefix.split("/") if self.prefix else ():
            walked = walked / part
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
                self.created.append(walked)
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = nfd
        self._fds = [("", fd)]

    def _dir(self, rel_dir: str) -> int:
        """An open descriptor of ``rel_dir`` under the root, made by this writer if it is missing."""
        while not _within(rel_dir, self._fds[-1][0]):
            os.close(self._fds.pop()[1])
        here, fd = self._fds[-1]
        rest = rel_dir[len(here) :].lstrip("/")
        for part in rest.split("/") if rest else ():
            path = f"{here}/{part}" if here else part
            if path in self.links:
                raise SourceError(f"{self.where}: the tree holds {rel_dir!r} inside symlink {path!r}; "
                                  "refusing to write through a link")  # fmt: skip
            if path not in self.dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    raise self._taken(path) from None
                self.dirs.add(path)
                self.created.append(self.root / path)
            fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            self._fds.append((path, fd))
            here = path
        return fd

    def _taken(self, path: str) -> SourceError:
        if path in self.written or path in self.dirs or path in self.links:
            return SourceError(f"{self.where}: the tree holds {path!r} twice")
        return SourceError(
            f"{self.where}: {path!r} is already there in {self.dest}; materialize into an empty directory"
        )

    # -- entries --------------------------------------------------------------------------------------

    def entry(self, rel: str, mode: str, kind: str, oid: str) -> None:
        """Write one entry at ``rel`` under the root; a link is only noted, :meth:`finish` writes it."""
        parts = rel.split("/")
        if any(p in ("", ".", "..", ".git") for p in parts) or "\x00" in rel:
            raise SourceError(f"{self.where}: the tree holds an unsafe path {rel!r}")
        if kind == "commit":
            log.debug("%s: skipping submodule %s", self.where, rel)
            return
        if kind == "tree":
            self._dir(rel)
            return
        for i, c in enumerate(rel):
            if c == "/" and rel[:i] in self.links:
                raise SourceError(f"{self.where}: the tree holds {rel!r} inside symlink {rel[:i]!r}; "
                                  "refusing to write through a link")  # fmt: skip
        parent, _, name = rel.rpartition("/")
        dir_fd = self._dir(parent)
        if rel in self.written or rel in self.dirs or rel in self.links:
            raise self._taken(rel)
        if mode == "120000":
            target = self.blob(oid).decode("utf-8", "surrogateescape")
            self._check_link(rel, target)
            self.links[rel] = target
            return
        try:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o755 if mode == "100755" else 0o644,
                dir_fd=dir_fd,
            )
        except FileExistsError:
            raise self._taken(rel) from None
        self.written.add(rel)
        self.created.append(self.root / rel)
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

    def finish(self) -> None:
        """Write the links, now that every file and directory is in place, and check where they lead."""
        for rel, target in sorted(self.links.items()):
            parent, _, name = rel.rpartition("/")
            try:
                os.symlink(target, name, dir_fd=self._dir(parent))
            except FileExistsError:
                raise self._taken(rel) from None
            self.created.append(self.root / rel)
        # Each link was checked on its own; a link through another link can still climb out.
        real_dest = os.path.realpath(self.dest)
        for rel in sorted(self.links):
            real = os.path.realpath(self.root / rel)
            if real != real_dest and not real.startswith(real_dest + os.sep):
                raise SourceError(f"{self.where}: symlink {rel!r} resolves to {real!r}, outside the repository")

    # -- objects and cleanup --------------------------------------------------------------------------

    def blob(self, oid: str, out: IO[bytes] | None = None) -> bytes:
        if self._batch is None:
            self._batch = self.git.cat_file(self.mirror)
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
        # Newest first: links (made last) go before the directories they sit in.
        for path in reversed(self.created):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop()[1])
        if self._batch is not None:
            proc, self._batch = self._batch, None
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill_group(proc)


def _within(path: str, directory: str) -> bool:
    return not directory or path == directory or path.startswith(directory + "/")
