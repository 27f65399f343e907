"""Values across the Lua/Python boundary: tables in, tables out.

A Lua table whose keys are exactly 1..n becomes a Python list, any other table a dict (an empty
table is ``{}``: the seed's configuration tables are maps, and slipway's config reader accepts
an empty map where it wants a list). Going back, lists and tuples become 1-based arrays, dicts
become tables and ``None`` becomes nil (a ``None`` in a list leaves a hole, as in Lua).
Functions and other non-data values cannot cross into the GitOps API; that is an error naming
the key, never a silent loss. A table that contains itself is an error too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lupa.lua54 as lupa

from ..errors import ConfigError

MAX_DEPTH = 64


class Converter:
    def __init__(self, runtime: lupa.LuaRuntime) -> None:
        self.runtime = runtime
        # Python wrappers of one Lua table are distinct objects with unrelated hashes, so the
        # identity that cycle detection needs comes from Lua itself.
        self._identity = runtime.eval('function(t) return string.format("%p", t) end')

    def from_lua(self, value: Any, *, where: str = "value", allow_functions: bool = False) -> Any:
        """A Lua value as plain Python data (dict, list, str, int, float, bool, None)."""
        return self._from_lua(value, where, 0, set(), allow_functions)

    def _from_lua(self, value: Any, where: str, depth: int, seen: set[str], allow_functions: bool) -> Any:
        kind = lupa.lua_type(value)
        if kind is None:
            return value  # already a Python value: str, int, float, bool, None
        if kind == "table":
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{where}: tables nested deeper than {MAX_DEPTH} levels")
            ident = self._identity(value)
            if ident in seen:
                raise ConfigError(f"{where}: the table contains itself; only tree-shaped data can be passed")
            seen.add(ident)
            try:
                items = list(value.items())
                if _is_array(items):
                    items.sort(key=lambda kv: kv[0])
                    return [self._from_lua(v, f"{where}[{k}]", depth + 1, seen, allow_functions) for k, v in items]
                out: dict[Any, Any] = {}
                for k, v in items:
                    if lupa.lua_type(k) is not None:
                        raise ConfigError(f"{where}: a Lua {lupa.lua_type(k)} used as a key cannot be passed")
                    out[k] = self._from_lua(v, f"{where}.{k}", depth + 1, seen, allow_functions)
                return out
            finally:
                seen.discard(ident)
        if kind == "function" and allow_functions:
            return value
        raise ConfigError(f"{where}: a Lua {kind} cannot be passed here; use strings, numbers, booleans and tables")

    def to_lua(self, value: Any) -> Any:
        """Python data as Lua values; unknown objects become their ``str``."""
        return self._to_lua(value, 0)

    def _to_lua(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if lupa.lua_type(value) is not None:
            return value  # a Lua object handed back
        if depth >= MAX_DEPTH:
            raise ConfigError(f"data nested deeper than {MAX_DEPTH} levels cannot be passed to Lua")
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, dict):
            table = self.runtime.table()
            for k, v in value.items():
                if v is not None:
                    table[self._to_lua(k, depth + 1)] = self._to_lua(v, depth + 1)
            return table
        if isinstance(value, (list, tuple, set, frozenset)):
            items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
            table = self.runtime.table()
            for i, v in enumerate(items, start=1):
                if v is not None:
                    table[i] = self._to_lua(v, depth + 1)
            return table
        return str(value)


def type_name(value: Any) -> str:
    """The Lua name of a value's type, for messages."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return lupa.lua_type(value) or type(value).__name__


def _is_array(items: list[tuple[Any, Any]]) -> bool:
    if not items:
        return False
    keys = [k for k, _ in items]
    if not all(type(k) is int for k in keys):
        return False
    return min(keys) == 1 and max(keys) == len(keys)
