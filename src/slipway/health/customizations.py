"""Health customizations in Argo CD's format, and where they come from.

A script is found for a (group, kind) in this order:

1. ConfigMaps of slipway's namespace labelled ``slipway.dev/customizations`` (the kubernetes store),
   holding ``argocd-cm``'s keys: ``resource.customizations.health.<group>_<Kind>`` (``<Kind>`` alone
   for the core group) and the older ``resource.customizations`` block (``group/Kind`` entries with
   a ``health.lua``, ``*`` globs allowed). An exact key before a glob; a later ConfigMap (by name) first.
2. Directories laid out as Argo CD's ``resource_customizations/<group>/<Kind>/health.lua`` (a core
   kind: ``<Kind>/health.lua`` at the top), with its wildcards: a group directory ``_.example.io``
   for every group ending in ``.example.io``, ``_`` for any group, a kind directory ``_`` for every
   kind. The most specific match wins (exact group, then the longest group suffix, then ``_``;
   within each, the exact kind before ``_``); between directories equally specific, a later one first.
   The directories are ``SLIPWAY_CUSTOMIZATIONS`` (colon-separated) then ``--customizations``.

:func:`default` is the process's set, rebuilt when the environment or :func:`configure` changes it.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..kube import Obj
from .registry import Health

log = logging.getLogger("slipway.health")

ENV = "SLIPWAY_CUSTOMIZATIONS"
KEY_PREFIX = "resource.customizations.health."
BLOCK_KEY = "resource.customizations"
WILDCARD = "_"
CONFIGMAP_TTL = 10.0  # seconds a read of the ConfigMaps is used before it is read again
CPU_SECONDS = 1.0  # each run's CPU budget
MEMORY = 64 << 20  # each run's Lua heap

# name ("namespace/name") -> the ConfigMap's data
ConfigMapSource = Callable[[], dict[str, dict[str, str]]]


@dataclass(frozen=True)
class Script:
    name: str  # what messages call it: a file, or a ConfigMap and key
    text: str
    cpu_seconds: float = CPU_SECONDS
    memory: int = MEMORY

    def run(self, obj: Obj) -> Health:
        from . import lua  # lupa, loaded when a script first runs

        return lua.run(self.text, self.name, obj, cpu_seconds=self.cpu_seconds, memory=self.memory)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"health customization {path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"health customization {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def index_directory(root: Path, make: Callable[[str, str], Script]) -> dict[tuple[str, str], Script]:
    """Every ``health.lua`` under ``root`` by (group, kind) as the directories name them."""
    if not root.is_dir():
        raise ConfigError(f"health customizations: {root} is not a directory")
    out: dict[tuple[str, str], Script] = {}
    for first in sorted(root.iterdir()):
        if not first.is_dir():
            continue
        if (first / "health.lua").is_file():  # a core kind: <Kind>/health.lua
            out[("", first.name)] = make(str(first / "health.lua"), _read(first / "health.lua"))
        for second in sorted(first.iterdir()):
            script = second / "health.lua"
            if second.is_dir() and script.is_file():
                out[(first.name, second.name)] = make(str(script), _read(script))
    return out


def group_patterns(group: str) -> list[str]:
    """The group directories that match ``group``, most specific first."""
    out = [group]
    parts = group.split(".")
    out += [WILDCARD + "." + ".".join(parts[i:]) for i in range(1, len(parts))] if group else []
    out.append(WILDCARD)
    return out


class Customizations:
    def __init__(
        self,
        dirs: Iterable[Path | str] = (),
        *,
        configmaps: ConfigMapSource | None = None,
        cpu_seconds: float = CPU_SECONDS,
        memory: int = MEMORY,
    ) -> None:
        self.cpu_seconds, self.memory = cpu_seconds, memory
        self.dirs = [Path(d) for d in dirs]
        # Later directories first.
        self._dirs = [index_directory(d, self._script) for d in reversed(self.dirs)]
        self._configmaps = configmaps
        self._cm_lock = threading.Lock()
        self._cm_read = -CONFIGMAP_TTL
        self._cm_exact: dict[tuple[str, str], Script] = {}
        self._cm_globs: list[tuple[str, str, Script]] = []

    def _script(self, name: str, text: str) -> Script:
        return Script(name, text, self.cpu_seconds, self.memory)

    def find(self, group: str, kind: str) -> Script | None:
        if self._configmaps is not None:
            exact, globs = self._configmap_index()
            if (group, kind) in exact:
                return exact[(group, kind)]
            for gpat, kpat, script in globs:
                if fnmatch.fnmatchcase(group, gpat) and fnmatch.fnmatchcase(kind, kpat):
                    return script
        if not self._dirs:
            return None
        for g in group_patterns(group):
            for k in (kind, WILDCARD):
                for index in self._dirs:
                    if (g, k) in index:
                        return index[(g, k)]
        return None

    def _configmap_index(self) -> tuple[dict[tuple[str, str], Script], list[tuple[str, str, Script]]]:
        with self._cm_lock:
            if time.monotonic() - self._cm_read < CONFIGMAP_TTL:
                return self._cm_exact, self._cm_globs
            assert self._configmaps is not None
            try:
                found = self._configmaps()
            except Exception as e:  # keep what was read last; the next look tries again
                log.warning("health customizations: cannot read the ConfigMaps: %s", e)
                return self._cm_exact, self._cm_globs
            exact: dict[tuple[str, str], Script] = {}
            globs: list[tuple[str, str, Script]] = []
            for cm in sorted(found, reverse=True):  # a later name first: setdefault keeps the first seen
                for key, (group, kind, text) in parse_configmap(cm, found[cm] or {}).items():
                    script = self._script(f"ConfigMap {cm} key {key}", text)
                    if "*" in group or "*" in kind:
                        globs.append((group, kind, script))
                    else:
                        exact.setdefault((group, kind), script)
            self._cm_exact, self._cm_globs, self._cm_read = exact, globs, time.monotonic()
            return exact, globs


def parse_configmap(name: str, data: dict[str, str]) -> dict[str, tuple[str, str, str]]:
    """``argocd-cm`` keys of one ConfigMap as {key: (group, kind, script)}; a key that names no kind is
    skipped with a warning naming the ConfigMap and key."""
    out: dict[str, tuple[str, str, str]] = {}
    for key in sorted(data):
        value = data[key]
        if key.startswith(KEY_PREFIX):
            group_kind = key[len(KEY_PREFIX) :]
            group, _, kind = group_kind.rpartition("_")
            if not kind:
                log.warning("ConfigMap %s key %s: names no kind (resource.customizations.health.<group>_<Kind>)",
                            name, key)  # fmt: skip
                continue
            out[key] = (group, kind, value)
        elif key == BLOCK_KEY:
            out.update(_block(name, value))
    return out


def _block(name: str, value: str) -> dict[str, tuple[str, str, str]]:
    out: dict[str, tuple[str, str, str]] = {}
    try:
        block: Any = yaml.safe_load(value)
    except yaml.YAMLError as e:
        log.warning("ConfigMap %s key %s: not YAML: %s", name, BLOCK_KEY, e)
        return out
    if not isinstance(block, dict):
        return out
    for group_kind, entry in block.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("health.lua"), str):
            continue
        group, _, kind = str(group_kind).rpartition("/")
        out[f"{BLOCK_KEY}[{group_kind}]"] = (group, kind, entry["health.lua"])
    return out


_lock = threading.Lock()
_flag_dirs: list[str] = []
_configmaps: ConfigMapSource | None = None
_default: tuple[tuple[Any, ...], Customizations] | None = None


def configure(
    dirs: Iterable[Path | str] | None = None, *, configmaps: ConfigMapSource | bool | None = False
) -> Customizations:
    """Set the process's ``--customizations`` directories and/or its ConfigMap source (``None`` drops
    it; ``False`` leaves it); returns the set now in force, so a bad directory fails here."""
    global _flag_dirs, _configmaps
    with _lock:
        if dirs is not None:
            _flag_dirs = [str(d) for d in dirs]
        if configmaps is not False:
            _configmaps = configmaps if callable(configmaps) else None
    return default()


def env_dirs() -> list[str]:
    return [d for d in os.environ.get(ENV, "").split(":") if d]


def default() -> Customizations:
    """The process's customizations: ``SLIPWAY_CUSTOMIZATIONS``, then ``--customizations``, and the
    ConfigMap source the engine's store set."""
    global _default
    key = (tuple(env_dirs()), tuple(_flag_dirs), _configmaps)
    current = _default
    if current is not None and current[0] == key:
        return current[1]
    with _lock:
        if _default is not None and _default[0] == key:
            return _default[1]
        built = Customizations([*key[0], *key[1]], configmaps=key[2])
        _default = (key, built)
        return built


def judge_offline(objects: list[Obj], dirs: Iterable[Path | str]) -> list[dict[str, Any]]:
    """``slipway health check``: each object (with an apiVersion and a kind) judged with the process's
    directories and ``dirs`` (later first), no ConfigMaps: one entry each, in order."""
    from .registry import assess

    custom = Customizations([*default().dirs, *dirs])
    out = []
    for o in objects:
        meta = o.get("metadata") or {}
        verdict = assess(str(o["apiVersion"]).rpartition("/")[0], str(o["kind"]), o, customizations=custom)
        out.append({"apiVersion": o["apiVersion"], "kind": o["kind"], "name": meta.get("name"),
                    "namespace": meta.get("namespace"), "status": verdict.status, "message": verdict.message})  # fmt: skip
    return out
