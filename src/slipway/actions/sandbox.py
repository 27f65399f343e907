"""The child process one action script runs in: Lua 5.1 (Argo CD's dialect), nothing of slipway.

It is started as a plain script (``python -I sandbox.py``), reads one JSON request on stdin
(``mode``: ``discovery`` or ``action``, ``script``, ``obj``, ``params``) and writes one JSON answer
on stdout. The parent bounds its time (killed past the deadline) and its address space
(``RLIMIT_AS``); Lua's own allocations are capped lower still, so a script that grows a table
forever gets a clear "not enough memory" instead of a dead process. The globals are Argo CD's:
``obj`` and ``actionParams``; ``require("os")`` gives only ``date``, ``time`` and ``clock``, and
nothing reaches files, processes or the network.
"""

from __future__ import annotations

import json
import sys
from typing import Any

LUA_MEMORY = 64 * 1024 * 1024

# What a script may use: Lua 5.1's pure libraries. No io, no os (beyond the clock), no loading of
# code from files, no debug, no way back to Python.
SANDBOX = """
local safe_os = { date = os.date, time = os.time, clock = os.clock, difftime = os.difftime }
local allowed = { os = safe_os, string = string, table = table, math = math }
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  xpcall = xpcall, string = string, table = table, math = math, os = safe_os,
  require = function(name)
    local m = allowed[name]
    if m == nil then error("module '" .. tostring(name) .. "' is not available to actions", 2) end
    return m
  end,
}
env._G = env
return env
"""


def to_lua(lua: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def from_lua(lua: Any, value: Any, like: Any = None) -> Any:
    """A Lua value as JSON; ``like`` (the input at the same place) decides what an empty table was."""
    if lua.eval("type")(value) != "table":
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value
    keys = list(value.keys())
    if not keys:
        return [] if isinstance(like, list) else {}
    if all(isinstance(k, int) for k in keys) and sorted(keys) == list(range(1, len(keys) + 1)):
        items = like if isinstance(like, list) else []
        return [from_lua(lua, value[i], items[i - 1] if i - 1 < len(items) else None) for i in range(1, len(keys) + 1)]
    near = like if isinstance(like, dict) else {}
    return {str(k): from_lua(lua, value[k], near.get(str(k))) for k in keys}


def run(request: dict[str, Any]) -> dict[str, Any]:
    import lupa.lua51 as lupa

    lua = lupa.LuaRuntime(
        register_eval=False, register_builtins=False, max_memory=LUA_MEMORY, unpack_returned_tuples=True
    )
    env = lua.execute(SANDBOX)
    obj = request.get("obj") or {}
    env["obj"] = to_lua(lua, obj)
    env["actionParams"] = to_lua(lua, {str(k): v for k, v in (request.get("params") or {}).items()})
    load = lua.eval("function(text, name, env) local f, e = loadstring(text, name); "
                    "if f == nil then return nil, e end; setfenv(f, env); return f, false end")  # fmt: skip
    chunk, problem = load(request["script"], "=" + request.get("name", "action.lua"), env)
    if chunk is None:
        return {"error": f"does not compile: {problem}"}
    pcall = lua.eval("function(f) local ok, v = pcall(f); return ok, v end")
    ok, result = pcall(chunk)
    if not ok:
        text = str(result)
        return {"error": "ran out of memory (the limit is 64 MiB)" if text == "not enough memory" else text}
    if result is None:
        return {"error": "returned nothing"}
    return {"result": from_lua(lua, result, obj if request.get("mode") == "action" else None)}


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    limit = int(request.get("memory") or 0)
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (10, 10))
    try:
        answer = run(request)
    except MemoryError:
        answer = {"error": "ran out of memory (the limit is 64 MiB)"}
    except Exception as e:  # a Lua error lupa raises from outside pcall (memory, conversion)
        text = str(e)
        answer = {"error": "ran out of memory (the limit is 64 MiB)" if "not enough memory" in text else text}
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
