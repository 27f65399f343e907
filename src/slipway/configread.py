"""Reading one configuration table (from Python, Lua, the CLI or a store) into typed values.

Every key read is remembered, so ``done()`` can reject what nobody read, naming the key and the
closest known one; a wrong type names the key and what was expected. The model's classes, the
render options and notifications all read their tables with it.
"""

from __future__ import annotations

from typing import Any

from .durations import parse_duration
from .errors import ConfigError


class Reader:
    """Reads one config table, naming each key in errors; ``done()`` rejects what was not read."""

    def __init__(self, data: Any, where: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{where or 'config'}: expected a table, got {type(data).__name__}")
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, types: type | tuple[type, ...], default: Any = None) -> Any:
        self.seen.add(name)
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ConfigError(f"{self.key(name)}: expected {_type_names(types)}, got a boolean")
        if not isinstance(value, types):
            raise ConfigError(f"{self.key(name)}: expected {_type_names(types)}, got {type(value).__name__}")
        return value

    def duration(self, name: str, default: str) -> str:
        value = self.get(name, str, default)
        parse_duration(value, key=self.key(name))
        return str(value)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {value!r} is not one of {', '.join(choices)}")
        return str(value)

    def strings(self, name: str) -> list[str]:
        value = self.get(name, (list, tuple, dict), [])
        if isinstance(value, dict):  # a Lua array arrives as {1: ..., 2: ...}
            value = [value[k] for k in sorted(value)]
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{self.key(name)}[{i + 1}]: expected a string, got {type(item).__name__}")
        return list(value)

    def tables(self, name: str) -> list[Any]:
        value = self.get(name, (list, tuple, dict), [])
        if isinstance(value, dict):  # a Lua array arrives as {1: ..., 2: ...}; an empty one as {}
            if not all(isinstance(k, int) for k in value):
                raise ConfigError(f"{self.key(name)}: expected a list of tables, got a table")
            value = [value[k] for k in sorted(value)]
        return list(value)

    def done(self, ignore: tuple[str, ...] = ()) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.seen and k not in ignore)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key" + _suggest(unknown[0], self.seen))


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {bool: "a boolean", str: "a string", int: "a number", float: "a number", dict: "a table",
             list: "a list", tuple: "a list"}  # fmt: skip
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in ts))


def _suggest(key: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(sorted(known))})"
