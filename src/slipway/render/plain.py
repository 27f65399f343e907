"""Plain manifests: every ``*.yaml``, ``*.yml`` and ``*.json`` file of a directory tree.

Files are read recursively in sorted order, hidden files and directories skipped, every
document of a file in turn, ``List`` kinds expanded. This is the renderer of last resort: a
directory no other renderer claims is walked, and its subdirectories are offered to the
registry again (a kustomization or a chart below plain files renders as such).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ManifestError
from .base import Manifest, as_json, objects_from, parse_yaml

EXTENSIONS = (".yaml", ".yml", ".json")
MAX_FILE = 32 * 1024 * 1024  # larger than any manifest file; a bigger one is a mistake, not a render


def load_file(path: Path, display: str) -> list[Manifest]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE:
            raise ManifestError(f"{display}: {size // (1024 * 1024)} MiB is too large for a manifest file")
        raw = path.read_bytes()
    except OSError as e:
        raise ManifestError(f"{display}: cannot read: {e.strerror or e}") from None
    if b"\x00" in raw:
        raise ManifestError(f"{display}: is a binary file, not YAML or JSON")
    try:
        text = raw.decode("utf-8-sig")  # a byte order mark is allowed, as kubectl allows it
    except UnicodeDecodeError as e:
        raise ManifestError(f"{display}: is not UTF-8 text (byte {e.start} cannot be decoded)") from None
    if path.suffix == ".json":
        try:
            docs = [as_json(json.loads(text), f"{display}, document 1")] if text.strip() else []
        except json.JSONDecodeError as e:
            raise ManifestError(f"{display}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    else:
        docs = parse_yaml(text, display)
    return objects_from(docs, display)
