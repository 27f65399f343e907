"""A directory on disk as a checkout: what ``diff --local DIR`` renders.

The directory is copied into a temporary one first, as a checkout of a repository would write it:
files and directories as they are (``.git`` left out), a symbolic link kept only when it points
inside the directory, and refused, naming it, when it points outside — the renderers then never
read a file outside what was given, just as a checkout never writes through a link. A render
that needs the rest of the repository (Jsonnet libraries, a chart's local dependency) gets the
work tree the directory sits in, copied the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import SourceError


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def copy_tree(source: Path, dest: Path, where: str) -> Path:
    """Copy ``source`` to ``dest`` (which must not exist); links are kept only inside ``source``."""
    root = os.path.realpath(source)
    if not os.path.isdir(root):
        raise SourceError(f"{where}: {source} is not a directory")
    dest.mkdir(parents=True)
    for current, dirs, files in os.walk(root, followlinks=False):
        rel = os.path.relpath(current, root)
        target_dir = dest if rel == "." else dest / rel
        dirs[:] = sorted(d for d in dirs if not (rel == "." and d == ".git"))
        for name in [*dirs, *files]:
            path = os.path.join(current, name)
            out = target_dir / name
            if os.path.islink(path):
                resolved = os.path.realpath(path)
                shown = os.path.relpath(path, root)
                if not _inside(resolved, root):
                    raise SourceError(
                        f"{where}: {shown} is a symbolic link to {os.readlink(path)!r}, outside the directory; "
                        "slipway does not follow it (a checkout of the repository would refuse it too)"
                    )
                # The same link, relative, so it points into the copy.
                out.symlink_to(os.path.relpath(resolved, os.path.dirname(path)))
                if name in dirs:
                    dirs.remove(name)
            elif name in dirs:
                out.mkdir()
            elif os.path.isfile(path):
                shutil.copyfile(path, out)
    return dest


def work_tree_of(directory: Path) -> Path | None:
    """The work tree ``directory`` sits in (the nearest parent holding ``.git``), or None."""
    current = Path(os.path.realpath(directory))
    for candidate in [current, *current.parents]:
        if (candidate / ".git").exists():
            return candidate
    return None


__all__ = ["copy_tree", "work_tree_of"]
