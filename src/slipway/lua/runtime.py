"""One script run: a Lua 5.4 state, the sandbox, the chunk, the workflows, the auto-sync wait.

A :class:`Session` owns one ``lupa.lua54.LuaRuntime``. The prelude (``prelude.lua``, shipped as package data) builds the
sandbox and the DSL in Lua; Python provides the host functions (output, stdin, the modules)
and calls every piece of script code through the prelude's ``call`` wrapper, which catches Lua
errors with their traceback, enforces task deadlines with an instruction-count hook, and hands
back Python exceptions such as KeyboardInterrupt so that they are re-raised rather than lost.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import IO, Any

import lupa.lua54 as lupa

from ..durations import parse_duration
from ..errors import SlipwayError, describe
from .chunk import CHUNK_NAME, Chunk
from .convert import Converter
from .modules import RAISE, AiModule, Console, GitopsModule, StdinReader, log, routed_logging
from .workflows import WorkflowRunner

PRELUDE_NAME = "slipway.prelude"
PRELUDE = (resources.files(__package__) / "prelude.lua").read_text(encoding="utf-8")

WaitForSignal = Callable[[], object]


@dataclass
class CallResult:
    ok: bool
    values: list[Any] = field(default_factory=list)
    message: str = ""
    traceback: str = ""
    timed_out: bool = False
    where: str = ""  # where a timed-out task was stopped


def _deny_attributes(obj: Any, name: str, is_setting: bool) -> str:
    # Scripts may call the Python functions behind the modules, never look inside them.
    del obj, is_setting
    raise AttributeError(f"slipway scripts cannot access Python attributes ({name!r})")


def _clean_traceback(text: str) -> str:
    """Drop the runtime's own frames (prelude, the xpcall that runs the script) from a traceback."""
    keep = [
        line
        for line in text.splitlines()
        if PRELUDE_NAME not in line and "in function 'xpcall'" not in line and "(...tail calls...)" not in line
    ]
    return "\n".join(keep)


class Session:
    def __init__(
        self,
        chunk: Chunk,
        params: dict[str, str],
        api: Any,
        console: Console,
        stdin: IO[str] | None,
    ) -> None:
        self.chunk = chunk
        self.params = {str(k): str(v) for k, v in params.items()}
        self.api = api
        self.console = console
        self.runtime = lupa.LuaRuntime(
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_deny_attributes,
        )
        version = self.runtime.eval("_VERSION")
        if version != "Lua 5.4":
            raise SlipwayError(f"slipway needs Lua 5.4, lupa gave {version}")
        self.conv = Converter(self.runtime)
        self.gitops = GitopsModule(api, self.conv)
        self.ai = AiModule(self.engine, self.conv, lambda: list(self.params.values()))
        self._engine: Any = None
        self._engine_resolved = False
        reader = StdinReader(stdin)
        rt = self.runtime
        host = rt.table_from(
            {
                "now": time.monotonic,
                "write_out": console.print,
                "write_err": console.write_err,
                "read": reader.read,
                "log": console.log,
                "parse_duration": _duration,
            }
        )
        host["gitops"] = rt.table_from(self.gitops.functions())
        host["RAISE"] = RAISE
        host["ai"] = rt.table_from(self.ai.functions())
        globals_ = rt.globals()
        prelude = globals_.load(PRELUDE, "=" + PRELUDE_NAME, "t")
        self.internals = prelude(host)
        globals_.python = None  # lupa's bridge to Python builtins: not for scripts

    def engine(self) -> Any:
        """The gitops API's engine, for the execution history, opened on first use (None without one)."""
        if not self._engine_resolved:
            self._engine_resolved = True
            engine = getattr(self.api, "engine", None)
            if callable(engine):
                try:
                    self._engine = engine()
                except Exception as e:
                    log.warning("no state store for the execution history: %s", describe(e))
        return self._engine

    def call(self, fn: Any, *args: Any, deadline: float | None = None) -> CallResult:
        """Call Lua code protected: its values, or its error mapped back to the original files."""
        ok, packed, expired = self.internals.call(deadline, fn, *args)
        if ok:
            values = [packed[i] for i in range(1, int(packed["n"]) + 1)]
            return CallResult(True, values, timed_out=bool(expired))
        if packed["timeout"]:
            return CallResult(False, timed_out=True, where=self.chunk.rewrite(str(packed["where"] or "")))
        obj = packed["object"]
        if isinstance(obj, BaseException) and not isinstance(obj, Exception):
            raise obj  # KeyboardInterrupt, SystemExit: the user's, not the script's
        message = describe(obj) if isinstance(obj, Exception) else str(packed["message"])
        traceback = self.chunk.rewrite(_clean_traceback(str(packed["traceback"] or "")))
        return CallResult(False, message=self.chunk.rewrite(message), traceback=traceback, timed_out=bool(expired))

    # -- the run ---------------------------------------------------------------------------------------

    def run(self, wait_for_signal: WaitForSignal | None = None) -> int:
        compiled = self.internals.compile(self.chunk.text, CHUNK_NAME)
        fn, error = compiled if isinstance(compiled, tuple) else (compiled, None)
        if fn is None:
            self.console.error(self.chunk.rewrite(str(error)))
            return 2
        try:
            top = self.call(fn)
            if not top.ok:
                self.console.error(top.message)
                if top.traceback:
                    self.console.log("debug", top.traceback)
                return 1
            code = 0 if WorkflowRunner(self).run_all() else 1
            if self.gitops.auto_sync_started and self.controller_running():
                self._keep_syncing(wait_for_signal)
            return code
        finally:
            if self.gitops.auto_sync_started:
                # The script failed or was interrupted: do not leave its controller behind.
                self.console.log("warn", "stopping the auto-sync controller the script started")
                self.gitops.stop_auto_sync()

    def controller_running(self) -> bool:
        """Is the auto-sync controller the script started still running?"""
        probe = getattr(self.api, "auto_sync_running", None)
        if callable(probe):
            return bool(probe())
        if getattr(self.api, "__name__", None) == "slipway.gitops":
            from .. import controller

            current = controller.default()
            return current is not None and current.running
        return True  # an injected API that cannot tell: trust what the script did

    def _keep_syncing(self, wait_for_signal: WaitForSignal | None) -> None:
        count = ""
        try:
            n = sum(1 for wf in self.api.list_workflows() if wf.get("auto_sync"))
            count = f" ({n} auto_sync workflow{'s' if n != 1 else ''})"
        except Exception:
            pass  # only a detail of the message
        self.console.log(
            "info",
            f"the auto-sync controller keeps running{count}: it syncs when the branches move. "
            f"Stop it with Ctrl-C or SIGTERM (kill -TERM {os.getpid()}).",
        )
        received = (wait_for_signal or (lambda: wait_for_signal_default(self.controller_running)))()
        self.console.log("info", f"{received or 'stop requested'}: stopping the auto-sync controller")
        self.gitops.stop_auto_sync()


def _duration(value: Any) -> tuple[Any, ...]:
    try:
        return (parse_duration(value, key="timeout"),)
    except SlipwayError as e:
        return None, str(e)


def wait_for_signal_default(still_running: Callable[[], bool] = lambda: True) -> str:
    """Block until SIGINT or SIGTERM (or until the controller stops); says which."""
    if threading.current_thread() is not threading.main_thread():
        # Signal handlers can only be installed by the main thread.
        while still_running():
            time.sleep(0.5)
        return "the auto-sync controller stopped"
    received: list[int] = []
    done = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        del frame
        received.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(0.5):
            if not still_running():
                return "the auto-sync controller stopped"
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
    return f"{signal.Signals(received[0]).name} received"


def run_script(
    paths: list[Any],
    params: dict[str, str] | None = None,
    *,
    stdin: IO[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
    gitops_api: Any = None,
    debug: bool | None = None,
    wait_for_signal: WaitForSignal | None = None,
) -> int:
    """Run Lua files as one chunk; 0 all ran and succeeded, 1 something failed, 2 not loadable.

    ``stdin``, ``out`` and ``err`` default to the process's ``sys.stdin``/``stdout``/``stderr``
    at call time. See :mod:`slipway.lua` for the full contract.
    """
    from pathlib import Path

    # The process's streams are looked up now, not at import: callers (and tests) may swap them.
    stdin = stdin if stdin is not None else sys.stdin
    if debug is None:
        debug = os.environ.get("SLIPWAY_DEBUG", "") not in ("", "0", "false", "no")
    console = Console(out or sys.stdout, err or sys.stderr, debug=debug)
    if not paths:
        console.error("no Lua file given")
        return 2
    sources = []
    for p in paths:
        try:
            sources.append((str(p), Path(p).read_text(encoding="utf-8")))
        except OSError as e:
            console.error(f"cannot read {p}: {e.strerror or e}")
            return 2
        except UnicodeDecodeError as e:
            console.error(f"cannot read {p}: not UTF-8 text ({e.reason} at byte {e.start})")
            return 2
    chunk = Chunk(sources)
    if gitops_api is None:
        from .. import gitops as gitops_api
    with routed_logging(console):
        session = Session(chunk, params or {}, gitops_api, console, stdin)
        return session.run(wait_for_signal)
