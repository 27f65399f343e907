"""The workflow's renderer options: the ``helm`` and ``jsonnet`` tables, validated like every config table.

They live beside the renderers that read them; :class:`slipway.model.Workflow` holds them and
the state store keeps them as part of the workflow's JSON config. Values and arguments are
plain data (tables keyed by strings, lists, strings, numbers, booleans): a Lua table, a Python
dict or a CLI flag all arrive as the same thing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..configread import Reader as _Reader
from ..errors import ConfigError

_RELEASE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _data(value: Any, where: str) -> Any:
    """``value`` if it is plain data a chart or a Jsonnet program can take (tables keyed by strings)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"{where}: has a key of type {type(k).__name__}; keys must be strings")
        return {k: _data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_data(v, f"{where}[{i + 1}]") for i, v in enumerate(value)]
    raise ConfigError(f"{where}: a {type(value).__name__} cannot be passed; use strings, numbers, booleans and tables")


def _relative_paths(r: _Reader, name: str, refs: bool = False) -> list[str]:
    paths = r.strings(name)
    for i, path in enumerate(paths):
        if refs and path.startswith("$"):
            values_ref(path, f"{r.key(name)}[{i + 1}]")
        elif not path.strip() or path.startswith("/"):
            raise ConfigError(f"{r.key(name)}[{i + 1}]: {path!r} must be a relative path")
    return paths


_ID = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


def values_ref(text: str, where: str) -> tuple[str, str]:
    """``$<repository id>/<path>`` (Argo CD's ``$values``): the repository id and the clean path in it."""
    repo, _, path = text[1:].partition("/")
    parts = path.split("/")
    if not _ID.match(repo) or not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ConfigError(
            f"{where}: {text!r} is not a values file of another repository; write $<repository id>/<path> "
            "(a path inside that repository)"
        )
    return repo, path


@dataclass
class HelmOptions:
    """How a chart of the workflow's path is rendered (``helm template``)."""

    release_name: str | None = None  # default: the workflow id, made a valid release name
    # relative to the chart, in order; ``$<repository id>/<path>``: a file of another Git repository
    values_files: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # merged last
    skip_crds: bool = False

    @classmethod
    def from_config(cls, data: Any, where: str = "helm") -> HelmOptions:
        r = _Reader(data, where)
        release = r.get("release_name", str)
        if release is not None and (len(release) > 53 or not _RELEASE_RE.match(release)):
            raise ConfigError(
                f"{r.key('release_name')}: {release!r} is not a valid Helm release name; use up to 53 lowercase "
                "letters, digits, '-' and '.'"
            )
        out = cls(
            release_name=release,
            values_files=_relative_paths(r, "values_files", refs=True),
            values=_data(r.get("values", dict, {}), r.key("values")),
            skip_crds=r.get("skip_crds", bool, False),
        )
        r.done()
        return out


@dataclass
class JsonnetOptions:
    """How a Jsonnet path is evaluated: its entry point, top-level arguments, external variables, libraries."""

    entry: str | None = None  # relative to the target path; default: every *.jsonnet file of it
    tlas: dict[str, Any] = field(default_factory=dict)  # strings as strings, anything else as code (JSON)
    ext_vars: dict[str, Any] = field(default_factory=dict)
    libs: list[str] = field(default_factory=list)  # library directories, relative to the repository root

    @classmethod
    def from_config(cls, data: Any, where: str = "jsonnet") -> JsonnetOptions:
        r = _Reader(data, where)
        entry = r.get("entry", str)
        if entry is not None and (not entry.endswith(".jsonnet") or entry.startswith("/") or ".." in entry.split("/")):
            raise ConfigError(f"{r.key('entry')}: {entry!r} must be a .jsonnet file inside the target path")
        out = cls(
            entry=entry,
            tlas=_data(r.get("tlas", dict, {}), r.key("tlas")),
            ext_vars=_data(r.get("ext_vars", dict, {}), r.key("ext_vars")),
            libs=_relative_paths(r, "libs"),
        )
        r.done()
        return out


def release_name(workflow_id: str) -> str:
    """A workflow id as a Helm release name: lowercase, ``_`` as ``-``, at most 53 characters."""
    name = workflow_id.lower().replace("_", "-")[:53].strip("-.")
    return name or "release"


def render_options(workflow_id: str, helm: HelmOptions | None, jsonnet: JsonnetOptions | None) -> dict[str, Any]:
    """What :class:`~slipway.render.RenderContext` carries: ``{"helm": {...}, "jsonnet": {...} or None}``."""
    h = asdict(helm or HelmOptions())
    h["release_name"] = h["release_name"] or release_name(workflow_id)
    return {"helm": h, "jsonnet": asdict(jsonnet) if jsonnet is not None else None}
