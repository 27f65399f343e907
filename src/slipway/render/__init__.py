"""Render: the objects a directory of a repository declares, each with the file and document it came from.

A small registry of renderers, one module per format: kustomize, Helm, Jsonnet, plain files.
Walking the target path, each directory is offered to the renderers in order (:data:`RENDERERS`);
the first that claims it renders it as a whole and it is not walked further (a kustomization, a
chart, a Jsonnet directory). A directory no renderer claims
contributes its plain ``*.yaml``/``*.yml``/``*.json`` files and its subdirectories are offered
in turn. Bad input raises a ManifestError naming the file and document, and nothing is
returned: a plan is computed from all of a path or from none of it. Every render of code from the
repository (Jsonnet, Helm, kustomize) runs bounded in time and memory (:mod:`.bounded`).
"""

from __future__ import annotations

from pathlib import Path

from .base import Manifest, RenderContext, Renderer, check_object, is_hook, objects_from, parse_yaml
from .helm import Helm, is_chart
from .jsonnet import Jsonnet, is_jsonnet_dir
from .kustomize import Kustomize, has_kustomization
from .plain import EXTENSIONS, load_file

# A kustomization wins over a chart in the same directory (it may inflate that chart itself).
RENDERERS: list[Renderer] = [Kustomize(), Helm(), Jsonnet()]


def register(renderer: Renderer, *, first: bool = False) -> None:
    """Add a renderer (``first``: ahead of the others, for a format that must win)."""
    if first:
        RENDERERS.insert(0, renderer)
    else:
        RENDERERS.append(renderer)


def _claimant(directory: Path, context: RenderContext) -> Renderer | None:
    return next((r for r in RENDERERS if r.claims(directory, context)), None)


def _dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_dir() and not any(part.startswith(".") for part in p.parts))


def needs_whole_repository(root: Path, context: RenderContext | None = None) -> bool:
    """True when a renderer of some directory under ``root`` reads files outside it."""
    ctx = context or RenderContext()
    ctx.root = root
    for d in [root, *_dirs(root)]:
        r = _claimant(d, ctx)
        if r is not None and r.needs_repository(d, ctx):
            return True
    return False


def render(root: Path, *, label: str = "", context: RenderContext | None = None) -> list[Manifest]:
    """All objects under ``root``; ``label`` prefixes sources (the path inside the repository)."""
    from ..errors import ManifestError

    if not root.is_dir():
        raise ManifestError(f"{label or root}: not a directory")
    out: list[Manifest] = []
    ctx = context or RenderContext()
    ctx.root = root
    before = ctx.deadline
    if before is None:  # one time limit for the whole path, however many renderers it takes
        ctx.deadline = ctx.bounds()[1]
    try:
        _walk(root, root, label, ctx, out)
    finally:
        ctx.deadline = before
    return out


def _walk(root: Path, directory: Path, label: str, context: RenderContext, out: list[Manifest]) -> None:
    renderer = _claimant(directory, context)
    if renderer is not None:
        out.extend(renderer.render(directory, _display(root, directory, label), context))
        return
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            _walk(root, entry, label, context, out)
        elif entry.is_file() and entry.suffix in EXTENSIONS:
            out.extend(load_file(entry, _display(root, entry, label)))


def _display(root: Path, path: Path, label: str) -> str:
    rel = path.relative_to(root).as_posix()
    if rel == ".":
        rel = ""
    return "/".join(p for p in (label.strip("/"), rel) if p) or "."


def contents(root: Path, limit: int = 8) -> str:
    """What a directory holds, in a few words: for an error about a render that made nothing."""
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        return "no files"
    shown = ", ".join(files[:limit])
    return f"{len(files)} file(s): {shown}" + (", ..." if len(files) > limit else "")


__all__ = [
    "RENDERERS",
    "Manifest",
    "RenderContext",
    "Renderer",
    "check_object",
    "contents",
    "has_kustomization",
    "is_chart",
    "is_hook",
    "is_jsonnet_dir",
    "load_file",
    "needs_whole_repository",
    "objects_from",
    "parse_yaml",
    "register",
    "render",
]
