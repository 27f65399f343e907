"""Paths inside a repository, as users write them: one rule for the model and the source stage.

A target path (or a values file, a Jsonnet library) is relative to the repository's root:
``""`` and ``"."`` are the root, ``a//b/`` is ``a/b``, and an absolute path, a ``..`` that would
leave the repository, or a control character is refused with a message that says which.
"""

from __future__ import annotations

import re
from pathlib import Path


class PathError(ValueError):
    pass


def clean_repo_path(raw: str) -> str:
    """``raw`` normalized (``""`` is the root); PathError for what would leave the repository."""
    raw = raw or ""
    if "\x00" in raw or "\n" in raw or "\r" in raw:
        raise PathError(f"{raw!r} contains a control character")
    if raw.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise PathError(f"{raw!r} is an absolute path; give a path relative to the repository root")
    parts = [p for p in raw.strip().split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathError(f"{raw!r} leaves the repository; '..' is not allowed")
    return "/".join(parts)


def inside(path: Path, boundary: Path) -> bool:
    """Whether ``path``, its links resolved, is ``boundary`` (already resolved) or below it."""
    try:
        path.resolve().relative_to(boundary)
        return True
    except ValueError:
        return False
