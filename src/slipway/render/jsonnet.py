"""Jsonnet: a directory of ``*.jsonnet`` programs is evaluated with the reference implementation (``jsonnet``).

Which directories: with the workflow's ``jsonnet`` table naming an ``entry``, the target path is
evaluated from that file alone. Without one, a directory holding ``*.jsonnet`` files and no
``*.yaml``, ``*.yml`` or ``*.json`` file at its top level is a Jsonnet directory: each of its
top-level ``*.jsonnet`` files is an entry point (in name order), ``*.libsonnet`` files and
subdirectories are only imported, never rendered on their own.

Top-level arguments (``tlas``) and external variables (``ext_vars``) that are strings are passed
as strings, anything else as code (its JSON); ``libs`` are library directories relative to the
repository root. Every import is resolved by slipway: one that leaves the repository is refused.
A program yields an object, a ``List``, or an array of objects; each object's source is its file
(``main.jsonnet, item 3``). An error names the file and line.

The evaluation runs in a child process (:mod:`.jsonnet_child`), bounded in time and memory like
every render (:mod:`.bounded`): the binding cannot be interrupted from inside, and a program such as
``std.range(0, 100000000)`` would otherwise take the memory of slipway itself.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from ..paths import inside
from . import bounded
from .base import Manifest, RenderContext, check_object, objects_from
from .plain import EXTENSIONS


def is_jsonnet_dir(directory: Path) -> bool:
    files = [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    return any(p.suffix == ".jsonnet" for p in files) and not any(p.suffix in EXTENSIONS for p in files)


def _options(context: RenderContext) -> dict[str, Any]:
    return dict((context.options or {}).get("jsonnet") or {})


class Jsonnet:
    name = "jsonnet"

    def claims(self, directory: Path, context: RenderContext) -> bool:
        if _options(context).get("entry"):
            return context.root is None or directory == context.root
        return is_jsonnet_dir(directory)

    def needs_repository(self, directory: Path, context: RenderContext) -> bool:
        return True  # imports and libs may reach anywhere in the repository

    def render(self, directory: Path, display: str, context: RenderContext) -> list[Manifest]:
        opts = _options(context)
        boundary = (context.repository_root or directory).resolve()
        where = f"{display} (jsonnet)"

        def label(path: Path) -> str:
            rel = Path(os.path.normpath(path)).resolve().relative_to(boundary).as_posix()
            if context.repository_root is None:
                return "/".join(p for p in (display.strip("./") or "", rel) if p)
            return rel

        if opts.get("entry"):
            entries = [directory / opts["entry"]]
            if not entries[0].is_file():
                raise ManifestError(f"{where}: jsonnet.entry {opts['entry']}: not found")
        else:
            entries = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".jsonnet")
        libs = []
        for lib in opts.get("libs") or []:
            path = Path(os.path.normpath(boundary / lib))
            if not inside(path, boundary):
                raise ManifestError(f"{where}: jsonnet.libs {lib}: outside the repository")
            if not path.is_dir():
                raise ManifestError(f"{where}: jsonnet.libs {lib}: not a directory of the repository")
            libs.append(path)
        out: list[Manifest] = []
        for entry, value in _evaluate(entries, boundary, libs, opts, label, where, context):
            out.extend(_objects(value, label(entry)))
        return out


def _split(values: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Strings as strings, anything else as Jsonnet code (its JSON)."""
    strings = {k: v for k, v in values.items() if isinstance(v, str)}
    codes = {k: json.dumps(v) for k, v in values.items() if not isinstance(v, str)}
    return strings, codes


_CHILD = Path(__file__).with_name("jsonnet_child.py")


def _evaluate(
    entries: list[Path], boundary: Path, libs: list[Path], opts: dict[str, Any], label: Any, where: str,
    context: RenderContext,
) -> list[tuple[Path, Any]]:  # fmt: skip
    """Each entry's value, evaluated in a bounded child process (:mod:`.jsonnet_child`)."""
    limits, deadline = context.bounds()
    tla_vars, tla_codes = _split(opts.get("tlas") or {})
    ext_vars, ext_codes = _split(opts.get("ext_vars") or {})
    request = {
        "entries": [str(e) for e in entries], "boundary": str(boundary), "libs": [str(p) for p in libs],
        "tla_vars": tla_vars, "tla_codes": tla_codes, "ext_vars": ext_vars, "ext_codes": ext_codes,
        "memory": limits.memory,
    }  # fmt: skip
    # -I: no PYTHON* variables, no user site, not the script's directory on sys.path.
    argv = [sys.executable, "-I", str(_CHILD)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    result = bounded.run(argv, where=where, limits=limits, deadline=deadline, cancel=context.cancel,
                         cwd=boundary, env=env, stdin=json.dumps(request).encode())  # fmt: skip
    if "memory allocation" in result.stderr or "MemoryError" in result.stderr:
        raise bounded.LimitExceeded(f"{where}: render exceeded the {limits.describe_memory()}")
    try:
        answers = json.loads(result.stdout)
    except ValueError:
        last = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise ManifestError(f"{where}: the Jsonnet evaluator failed: {last[:500]}") from None
    out = []
    for answer in answers:
        entry = Path(answer["entry"])
        if answer.get("memory"):
            raise bounded.LimitExceeded(f"{where}: render exceeded the {limits.describe_memory()}")
        if "error" in answer:
            raise ManifestError(_clean(answer["error"], boundary, entry, label))
        out.append((entry, json.loads(answer["text"])))
    return out


_LOCATION = re.compile(r"^\t?(/[^\t:]+):(\d+(?::[\d()\-:]+)?)")


def _clean(message: str, boundary: Path, entry: Path, label: Any) -> str:
    """``file:line: RUNTIME ERROR: ...`` with the repository's paths, from the first frame that has one."""
    lines = message.strip().splitlines()
    head = lines[0] if lines else "evaluation failed"
    where = label(entry)
    m = re.match(r"^(STATIC ERROR|RUNTIME ERROR): (/[^:]+):([\d:()\-]+): (.*)$", head)
    if m:
        return f"{_relabel(m[2], boundary, label)}:{m[3]}: {m[1]}: {_paths(m[4], boundary, label)}"
    for line in lines[1:]:
        loc = _LOCATION.match(line)
        if loc:
            return f"{_relabel(loc[1], boundary, label)}:{loc[2]}: {_paths(head, boundary, label)}"
    return f"{where}: {_paths(head, boundary, label)}"


def _relabel(path: str, boundary: Path, label: Any) -> str:
    return str(label(Path(path))) if inside(Path(os.path.normpath(path)), boundary) else Path(path).name


def _paths(text: str, boundary: Path, label: Any) -> str:
    return re.sub(r"/[^\s:\"']+", lambda m: _relabel(m.group(0), boundary, label), text)


def _objects(value: Any, source: str) -> list[Manifest]:
    if isinstance(value, list):
        out = []
        for n, item in enumerate(value, start=1):
            where = f"{source}, item {n}"
            check_object(item, where)
            out.extend(objects_from([item], where) if item.get("kind") == "List" else [Manifest(item, where)])
        return out
    if isinstance(value, dict):
        if "apiVersion" not in value and "kind" not in value:
            raise ManifestError(
                f"{source}: evaluates to an object that is not a Kubernetes object; return an object, "
                "a List, or an array of objects"
            )
        check_object(value, source)
        if value.get("kind") == "List" or isinstance(value.get("items"), list):
            return [Manifest(m.obj, m.source.replace(", document 1", "", 1)) for m in objects_from([value], source)]
        return [Manifest(value, source)]
    raise ManifestError(f"{source}: evaluates to {type(value).__name__}, not a Kubernetes object or a list of them")
