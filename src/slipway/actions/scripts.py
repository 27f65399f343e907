"""Finding and running action scripts in Argo CD's format.

A kind's actions live in ``<group>/<Kind>/actions/``: ``discovery.lua`` returns the table of
actions available on one object (``{restart = {}, pause = {disabled = true}}``, a ``params`` list
where an action takes some), and ``<name>/action.lua`` returns the object changed, or a list of
``{operation = "create" | "patch", resource = ...}``. The directories searched, first match wins:
each ``--customizations``/``SLIPWAY_CUSTOMIZATIONS`` directory in order, then the built-in ones
shipped with slipway (in the same format). A group directory ``_.example.io`` matches every group
under ``example.io``, a kind directory ``_`` every kind; the core group's directory is ``core``.

Every script runs in a child process (:mod:`.sandbox`) bounded in time and memory, so a script that
loops forever or grows without end is stopped and named, and slipway goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError

BUILTIN = Path(__file__).parent / "builtin"
SANDBOX = Path(__file__).parent / "sandbox.py"
TIMEOUT = 5.0  # seconds one script may run
MEMORY = 512 * 1024 * 1024  # the child's whole address space; Lua itself gets 64 MiB of it


class ActionError(UserError):
    """An action script failed, or asked for something an action may not do; nothing was changed."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"  # string | integer
    default: str | None = None
    description: str = ""

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "description": self.description}


@dataclass(frozen=True)
class Action:
    name: str
    disabled: bool = False
    display_name: str = ""
    icon_class: str = ""
    params: tuple[Param, ...] = field(default_factory=tuple)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name, "disabled": self.disabled, "displayName": self.display_name or self.name,
            "iconClass": self.icon_class, "params": [p.public() for p in self.params],
        }  # fmt: skip


def search_path(extra: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """The directories searched, in order: those given, ``$SLIPWAY_CUSTOMIZATIONS`` (``:``-separated), built-ins."""
    env = [Path(p).expanduser() for p in (os.environ.get("SLIPWAY_CUSTOMIZATIONS") or "").split(os.pathsep) if p]
    return [*extra, *env, BUILTIN]


def _group_dirs(root: Path, group: str) -> list[Path]:
    name = group or "core"
    out = [root / name]
    parts = name.split(".")
    for i in range(1, len(parts)):  # a.b.example.io: _.b.example.io, _.example.io, _.io
        out.append(root / ("_." + ".".join(parts[i:])))
    return out


def actions_dir(group: str, kind: str, dirs: list[Path]) -> Path | None:
    """The ``actions`` directory of the first customization that has one for (group, kind)."""
    for root in dirs:
        for gdir in _group_dirs(root, group):
            for kdir in (gdir / kind, gdir / "_"):
                candidate = kdir / "actions"
                if (candidate / "discovery.lua").is_file():
                    return candidate
    return None


def run_lua(script: Path, mode: str, obj: dict[str, Any], params: dict[str, str] | None = None,
            timeout: float = TIMEOUT) -> Any:  # fmt: skip
    """Run one script in the sandbox; its result, or ActionError naming the script."""
    try:
        text = script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{script}: cannot read ({e})") from None
    request = {"mode": mode, "script": text, "name": script.name, "obj": obj, "params": params or {},
               "memory": MEMORY}  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-I", str(SANDBOX)], input=json.dumps(request).encode(), capture_output=True,
            timeout=timeout, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ActionError(f"{script}: stopped after {timeout:g}s (an endless loop?); nothing was changed") from None
    if done.returncode != 0 or not done.stdout:
        why = "ran out of memory" if b"memory" in done.stderr.lower() else f"crashed (exit {done.returncode})"
        raise ActionError(f"{script}: {why}; nothing was changed")
    answer = json.loads(done.stdout)
    if "error" in answer:
        raise ActionError(f"{script}: {answer['error']}; nothing was changed")
    return answer["result"]


def discover(group: str, kind: str, obj: dict[str, Any], dirs: list[Path]) -> list[Action]:
    """The actions ``discovery.lua`` offers for ``obj``, by name; none when no customization knows its kind."""
    where = actions_dir(group, kind, dirs)
    if where is None:
        return []
    table = run_lua(where / "discovery.lua", "discovery", obj)
    if isinstance(table, list) and not table:
        table = {}
    if not isinstance(table, dict):
        raise ActionError(
            f"{where / 'discovery.lua'}: must return a table of actions by name, not {type(table).__name__}"
        )
    out = []
    for name, spec in sorted(table.items()):
        spec = spec if isinstance(spec, dict) else {}
        params = tuple(
            Param(str(p.get("name")), str(p.get("type") or "string"),
                  None if p.get("default") is None else str(p.get("default")), str(p.get("description") or ""))
            for p in spec.get("params") or [] if isinstance(p, dict) and p.get("name")
        )  # fmt: skip
        out.append(Action(str(name), bool(spec.get("disabled")), str(spec.get("displayName") or ""),
                          str(spec.get("iconClass") or ""), params))  # fmt: skip
    return out


def action_script(group: str, kind: str, name: str, dirs: list[Path]) -> Path:
    where = actions_dir(group, kind, dirs)
    script = where / name / "action.lua" if where is not None else None
    if script is None or not script.is_file():
        raise ActionError(f"no action {name!r} for {kind} objects")
    return script


__all__ = ["Action", "ActionError", "Param", "action_script", "actions_dir", "discover", "run_lua", "search_path"]
