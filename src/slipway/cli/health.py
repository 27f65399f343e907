"""``slipway health check FILE...``: the health of objects read from files, with no cluster.

Each object (any YAML or JSON document with an ``apiVersion`` and a ``kind``; a ``List`` counts
as its items) is judged as a sync would judge it live: customizations first (``--customizations``
here and before the command, ``SLIPWAY_CUSTOMIZATIONS``), then the built-in rules, then kstatus.
It is how a health script is tried before it is installed. Exit 0 when every object is Healthy, 1
when one is not, 2 on an error (a file that cannot be read, a document that is not an object).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from .output import colored, emit_json, json_mode, out, paint

_COLOR = {"Healthy": "green", "Suspended": "blue", "Progressing": "cyan", "Missing": "yellow"}


@click.group("health")
def health() -> None:
    """Health of objects, as slipway judges it."""


def _documents(path: Path) -> list[tuple[str, dict[str, Any]]]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        docs = list(yaml.safe_load_all(text))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not YAML or JSON{where}: {getattr(e, 'problem', None) or e}") from None
    found: list[tuple[str, dict[str, Any]]] = []
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        where = f"{path}: document {i}"
        items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else None
        for j, o in enumerate(items if isinstance(items, list) else [doc]):
            at = f"{where}, item {j + 1}" if items is not None else where
            if not isinstance(o, dict):
                raise ConfigError(f"{at}: not an object (a mapping with apiVersion and kind)")
            if not isinstance(o.get("apiVersion"), str) or not isinstance(o.get("kind"), str) or not o["kind"]:
                raise ConfigError(f"{at}: needs an apiVersion and a kind")
            if o.get("metadata") is not None and not isinstance(o["metadata"], dict):
                raise ConfigError(f"{at}: metadata is not a mapping")
            found.append((at, o))
    return found


@health.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--customizations", "dirs", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A directory of Argo CD health scripts (<group>/<Kind>/health.lua); repeatable, later ones first.")  # fmt: skip
def check(files: tuple[Path, ...], dirs: tuple[Path, ...]) -> None:
    """Judge the health of each object in FILES, offline; exit 0 when all are Healthy, 1 when one is not."""
    from ..engine import Engine

    objects = [o for f in files for _, o in _documents(f)]
    results = Engine.health_of(objects, list(dirs))
    if json_mode():
        emit_json(results)
    else:
        color = colored(sys.stdout)
        for r in results:
            name = f"{r['kind']}/{r['name'] or '(no name)'}" + (f" -n {r['namespace']}" if r["namespace"] else "")
            status = paint(f"{r['status']:<11}", _COLOR.get(r["status"], "red"), color)
            out(f"{status} {name}" + (f": {r['message']}" if r["message"] else ""))
    sys.exit(0 if all(r["status"] == "Healthy" for r in results) else 1)
