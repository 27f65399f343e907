"""Render: the objects a directory of a repository declares, as plain dicts with their source.

Every ``*.yaml``, ``*.yml`` and ``*.json`` under the path, recursively and in sorted order (hidden
files and directories skipped), multi-document, ``List`` kinds expanded. A directory holding a
``kustomization.yaml`` is rendered with ``kustomize build`` instead and not walked further. Each
object keeps where it came from (file and document index), so every error and conflict can name
it. Bad input — invalid YAML, a document without apiVersion, kind or metadata.name — raises a
ManifestError and nothing is returned: a plan is computed from all of a path or from none of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import BuildError, ManifestError
from ..kube.objects import Obj

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml is part of the PyYAML wheels
    _Loader = yaml.SafeLoader

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_EXTENSIONS = (".yaml", ".yml", ".json")


@dataclass
class Manifest:
    obj: Obj
    source: str  # "apps/web.yaml, document 2" or "overlay (kustomize), document 1"


def has_kustomization(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def needs_whole_repository(root: Path) -> bool:
    """Kustomize overlays refer to bases elsewhere in the repository: render those from a full tree."""
    return any(has_kustomization(d) for d in [root, *_dirs(root)])


def _dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_dir() and not any(part.startswith(".") for part in p.parts))


def render(root: Path, *, label: str = "") -> list[Manifest]:
    """All objects under ``root``; ``label`` prefixes sources (the path inside the repository)."""
    if not root.is_dir():
        raise ManifestError(f"{label or root}: not a directory")
    out: list[Manifest] = []
    _walk(root, root, label, out)
    return out


def _walk(root: Path, directory: Path, label: str, out: list[Manifest]) -> None:
    if has_kustomization(directory):
        out.extend(kustomize(directory, _display(root, directory, label)))
        return
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            _walk(root, entry, label, out)
        elif entry.is_file() and entry.suffix in _EXTENSIONS:
            out.extend(load_file(entry, _display(root, entry, label)))


def _display(root: Path, path: Path, label: str) -> str:
    rel = path.relative_to(root).as_posix()
    if rel == ".":
        rel = ""
    return "/".join(p for p in (label.strip("/"), rel) if p) or "."


def load_file(path: Path, display: str) -> list[Manifest]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{display}: cannot read: {e}") from None
    if path.suffix == ".json":
        try:
            docs = [json.loads(text)] if text.strip() else []
        except json.JSONDecodeError as e:
            raise ManifestError(f"{display}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    else:
        docs = parse_yaml(text, display)
    return objects_from(docs, display)


def parse_yaml(text: str, display: str) -> list[Any]:
    docs: list[Any] = []
    try:
        for doc in yaml.load_all(text, Loader=_Loader):
            docs.append(doc)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{display}, document {len(docs) + 1}: invalid YAML{where}: {problem}") from None
    return docs


def objects_from(docs: list[Any], display: str) -> list[Manifest]:
    out: list[Manifest] = []
    for index, doc in enumerate(docs, start=1):
        if doc is None:
            continue  # an empty document (a trailing ---, a file of comments)
        where = f"{display}, document {index}"
        _check(doc, where)
        kind = doc["kind"]
        if kind == "List" or (kind.endswith("List") and isinstance(doc.get("items"), list)):
            for n, item in enumerate(doc.get("items") or [], start=1):
                _check(item, f"{where}, item {n}")
                out.append(Manifest(item, f"{where}, item {n}"))
        else:
            out.append(Manifest(doc, where))
    return out


def _check(doc: Any, where: str) -> None:
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected a Kubernetes object (a mapping), got {type(doc).__name__}")
    for key in ("apiVersion", "kind"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ManifestError(f"{where}: missing {key}")
    if doc["kind"] == "List" or (doc["kind"].endswith("List") and isinstance(doc.get("items"), list)):
        return
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        if isinstance(meta, dict) and meta.get("generateName"):
            raise ManifestError(f"{where}: {doc['kind']} uses generateName, which GitOps cannot track; give it a name")
        raise ManifestError(f"{where}: {doc['kind']} has no metadata.name")
    ns = meta.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise ManifestError(f"{where}: metadata.namespace must be a string")


def kustomize_binary() -> str:
    from ..cluster import build

    built = build.binary("kustomize")
    if built.exists():
        return str(built)
    found = shutil.which("kustomize")
    if found:
        return found
    raise BuildError("kustomize is not built; run `slipway cluster build` (or install kustomize v5)")


def kustomize(directory: Path, display: str) -> list[Manifest]:
    where = f"{display} (kustomize)"
    try:
        proc = subprocess.run(
            [kustomize_binary(), "build", "."],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ManifestError(f"{where}: kustomize build timed out after 120s") from None
    if proc.returncode != 0:
        message = " ".join(line.strip() for line in proc.stderr.strip().splitlines()[-3:])
        raise ManifestError(f"{where}: kustomize build failed: {message}")
    return objects_from(parse_yaml(proc.stdout, where), where)
