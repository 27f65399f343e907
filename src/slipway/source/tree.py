"""Materializing one path of one revision: files written straight from a mirror's objects.

``ls-tree`` lists the path and ``cat-file --batch`` streams the blobs: no work tree, no checkout of
the rest of the repository, no ``.gitattributes`` export filters rewriting what gets deployed.
The files land at their repository paths under the destination, and symlinks that would lead
outside the repository (and so outside the destination) are refused. A failure takes back
everything that was written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import IO

from ..errors import SourceError
from .mirror import Mirrors, Missing
from .process import Git, kill_group

log = logging.getLogger("slipway.source")


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
    root = dest / path if path else dest
    writer = Writer(mirrors.git, mirror, where, path)
    try:
        if kind == "tree":
            writer.mkdir(root)
            for emode, ekind, eoid, ename in mirrors.ls_tree(mirror, oid, recursive=True):
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
    return result, writer.files


class Writer:
    """Writes tree entries under one root, remembers what it created, and can take it all back."""

    def __init__(self, git: Git, mirror: Path, where: str, prefix: str) -> None:
        self.git = git
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
                kill_group(proc)
