"""One health script run: a fresh Lua state per run, bounded in CPU time and memory.

A script written for Argo CD (``health.lua``) sees ``obj`` (a copy of the live object) and
returns ``{status=..., message=...}``. It runs in the environment those scripts expect of
gopher-lua (``sandbox.lua``: Lua 5.1 idioms such as ``table.getn`` and ``unpack``, ``os.time`` and
``os.date`` and nothing else of ``os``, no ``io``, no loading of files) on a fresh Lua 5.4 state,
so runs share nothing. Lua patterns that could backtrack for long run in a Lua matcher
(``patterns.lua``), since the C one cannot be interrupted. A debug hook every 1000 instructions checks the thread's CPU time against
the budget (a ``pcall`` cannot swallow that), and the state's allocator is capped. A script that
fails to compile, errors, runs out of its budget or returns anything but a table with one of the
six statuses gives ``Unknown``, with a message naming the script.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

import lupa.lua54 as lupa

from ..kube import Obj
from ..lua.convert import Converter
from .customizations import CPU_SECONDS, MEMORY
from .registry import STATUSES, UNKNOWN, Health

SANDBOX = (resources.files(__package__) / "sandbox.lua").read_text(encoding="utf-8")
PATTERNS = (resources.files(__package__) / "patterns.lua").read_text(encoding="utf-8")
# Above about this many steps, a pattern match runs in Lua (patterns.lua), under the CPU budget.
PATTERN_COST = 1e6


def _deny_attributes(obj: Any, name: str, is_setting: bool) -> str:
    del obj, is_setting
    raise AttributeError(f"health scripts cannot access Python attributes ({name!r})")


def run(
    text: str,
    name: str,
    obj: Obj,
    *,
    cpu_seconds: float = CPU_SECONDS,
    memory: int = MEMORY,
    pattern_cost: float = PATTERN_COST,
) -> Health:
    """Run one script on one object; never raises for anything the script does."""
    try:
        return _run(text, name, obj, cpu_seconds, memory, pattern_cost)
    except lupa.LuaMemoryError:
        return Health(UNKNOWN, f"health script {name}: ran out of memory (limit {memory >> 20} MiB)")
    except lupa.LuaError as e:
        return Health(UNKNOWN, f"health script {name}: {e}")


def _run(text: str, name: str, obj: Obj, cpu_seconds: float, memory: int, pattern_cost: float) -> Health:
    rt = lupa.LuaRuntime(
        max_memory=memory,
        unpack_returned_tuples=True,
        register_eval=False,
        register_builtins=False,
        attribute_filter=_deny_attributes,
    )
    rt.globals().python = None
    load = rt.globals().load
    runner = load(SANDBOX, "=slipway.sandbox")(load(PATTERNS, "=slipway.patterns")(), pattern_cost)
    where = f"health script {name}"
    outcome = runner(text, "=" + name, Converter(rt).to_lua(obj), cpu_seconds, time.thread_time)
    kind, a, b = (*outcome, None, None)[:3] if isinstance(outcome, tuple) else (outcome, None, None)
    if kind == "timeout":
        return Health(UNKNOWN, f"{where}: stopped after {cpu_seconds:g}s of CPU (does it loop?)")
    if kind == "error":
        text = str(a)
        if "not enough memory" in text:
            return Health(UNKNOWN, f"{where}: ran out of memory (limit {memory >> 20} MiB)")
        return Health(UNKNOWN, text if text.startswith(name) else f"{where}: {text}")
    if kind == "value":
        if a == "nil":
            return Health(UNKNOWN, f"{where} returned no health (it must return a table with a status)")
        return Health(UNKNOWN, f"{where} returned a {a}, not a table with a status")
    if kind == "badmessage":
        return Health(UNKNOWN, f"{where} returned a message that is a {a}, not a string")
    status, message = str(a), str(b or "")
    if status not in STATUSES:
        return Health(UNKNOWN, f"{where} returned an invalid health status {status!r} (one of {', '.join(STATUSES)})")
    return Health(status, message)
