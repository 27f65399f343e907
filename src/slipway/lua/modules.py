"""The Python half of the Lua modules: ``log``, ``gitops``, ``ai``, and the console they write to.

Every ``gitops`` function goes through :meth:`GitopsModule.call`: Lua tables in, Python data to
the API, Python results back as Lua tables. A failure never raises into Lua: it is logged at
error level and returned the Lua way, ``nil, message`` (``false, message`` for the two functions
that answer with a boolean). A missing workflow id is caught before the API is called, with a
message that points at the likely cause (an undefined variable). Configuration tables are never
logged: they may hold credentials.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import lupa.lua54 as lupa

from .. import insight
from ..errors import SlipwayError, describe
from .convert import Converter, type_name

log = logging.getLogger("slipway.lua")

_LEVELS = {"debug": "DEBUG", "info": "INFO ", "warn": "WARN ", "error": "ERROR"}


class Console:
    """Where a script's output goes: ``print`` to ``out``, log lines to ``err``."""

    def __init__(self, out: IO[str], err: IO[str], *, debug: bool = False) -> None:
        self.out = out
        self.err = err
        self.debug = debug
        self.last_error = ""  # the latest error line: the reason a task failed, when it gives none
        self._lock = threading.Lock()

    def log(self, level: str, message: str) -> None:
        if level == "debug" and not self.debug:
            return
        if level == "error":
            self.last_error = message
        line = f"{time.strftime('%H:%M:%S')} {_LEVELS.get(level, 'INFO ')} {message}\n"
        self._write(self.err, line)

    def print(self, text: str) -> None:
        self._write(self.out, text)

    def write_err(self, text: str) -> None:
        self._write(self.err, text)

    def error(self, text: str) -> None:
        """A line for the user about the script as a whole: ``error: FILE:LINE: message``."""
        self._write(self.err, f"error: {text}\n")

    def _write(self, stream: IO[str], text: str) -> None:
        with self._lock:
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed pipe must not turn a script's print into a crash


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.DEBUG if console.debug else logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and self.console.debug:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            if record.levelno >= logging.ERROR:
                level = "error"
            elif record.levelno >= logging.WARNING:
                level = "warn"
            elif record.levelno >= logging.INFO:
                level = "info"
            else:
                level = "debug"
            self.console.log(level, message)
        except Exception:
            self.handleError(record)


@contextmanager
def routed_logging(console: Console) -> Iterator[None]:
    """Send the ``slipway`` logger's records to the script's console while a script runs.

    Propagation is switched off meanwhile so that a root handler (the CLI's) does not print
    every line twice; level, propagation and handlers are restored afterwards.
    """
    logger = logging.getLogger("slipway")
    handler = _ConsoleHandler(console)
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.DEBUG if console.debug else logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class StdinReader:
    """``io.read`` over the process's standard input: nil at end of input or when it is closed."""

    def __init__(self, stdin: IO[str] | None) -> None:
        self.stdin = stdin

    def read(self, *formats: Any) -> tuple[Any, ...]:
        results: list[Any] = []
        for fmt in formats or ("l",):
            value = self._one(fmt)
            results.append(value)
            if value is None:
                break
        return tuple(results)

    def _one(self, fmt: Any) -> Any:
        if self.stdin is None:
            return None
        try:
            if isinstance(fmt, (int, float)):
                count = int(fmt)
                data = self.stdin.read(count) if count > 0 else ""
                return data if data or count == 0 else None
            kind = str(fmt).lstrip("*")[:1]
            if kind == "a":
                return self.stdin.read()
            line = self.stdin.readline()
        except (OSError, ValueError):  # closed or unreadable: as Lua says at end of input
            return None
        if line == "":
            return None
        if kind == "L":
            return line
        text = line[:-1] if line.endswith("\n") else line
        if kind == "n":
            return _number(text.strip())
        return text


def _number(text: str) -> int | float | None:
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


# -- gitops ------------------------------------------------------------------------------------------

ID_FUNCTIONS = ("get_workflow_status", "sync_workflow", "generate_diff", "preview_changes", "rollback_workflow")
CONFIG_FUNCTIONS = ("workflow", "register_repository", "create_workflow")
BOOL_FUNCTIONS = ("sync_workflow", "rollback_workflow")
# These raise a Lua error when they cannot answer: a nil diff would read as "no changes".
RAISING_FUNCTIONS = ("generate_diff", "preview_changes")
# The third value a failed raising call returns; the prelude's wrapper turns it into error().
RAISE = "slipway:raise"
PLAIN_FUNCTIONS = ("list_workflows", "start_auto_sync", "stop_auto_sync")
GITOPS_FUNCTIONS = (*CONFIG_FUNCTIONS, *ID_FUNCTIONS, *PLAIN_FUNCTIONS)


def _lua_repr(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None or isinstance(value, (bool, int, float)):
        return "nil" if value is None else json.dumps(value)
    return f"<{type_name(value)}>"


class GitopsModule:
    """``require("gitops")``: the seed's functions over a Python API object."""

    def __init__(self, api: Any, conv: Converter) -> None:
        self.api = api
        self.conv = conv
        self.auto_sync_started = False

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {name: self._bind(name) for name in GITOPS_FUNCTIONS}

    def _bind(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            return self.call(name, *args)

        call.__name__ = name
        return call

    def call(self, name: str, *args: Any) -> Any:
        failure = False if name in BOOL_FUNCTIONS else None
        first = args[0] if args else None
        label = f"gitops.{name}"
        try:
            if name in ID_FUNCTIONS:
                label = f"gitops.{name}({_lua_repr(first)})"
                problem = _check_workflow_id(first)
                if problem:
                    return self._fail(label, problem, failure)
                py_args: list[Any] = [first]
                if name == "rollback_workflow":
                    reason = args[1] if len(args) > 1 else None
                    py_args.append("" if reason is None else str(self.conv.from_lua(reason, where="reason")))
            elif name in CONFIG_FUNCTIONS:
                py_args = [self.conv.from_lua(first, where=f"{name} config")]
            else:
                py_args = []
            fn = getattr(self.api, name, None)
            if fn is None:
                return self._fail(label, "not available in this API", failure)
            result = fn(*py_args)
        except SlipwayError as e:
            return self._fail(label, describe(e), failure)
        except Exception as e:  # a bug below us: still never an exception inside the script
            log.debug("%s raised", label, exc_info=True)
            return self._fail(label, describe(e), failure)
        if name == "start_auto_sync":
            self.auto_sync_started = True
            return True
        if name == "stop_auto_sync":
            self.auto_sync_started = False
            return True
        if name in BOOL_FUNCTIONS:
            return bool(result)
        return self.conv.to_lua(result)

    def _fail(self, label: str, message: str, failure: Any) -> tuple[Any, ...]:
        log.error("%s: %s", label, message)
        if label.startswith(tuple(f"gitops.{n}(" for n in RAISING_FUNCTIONS)):
            return None, f"{label}: {message}", RAISE
        return failure, message

    def stop_auto_sync(self) -> None:
        """Stop the controller the script started (after the wait, or when the script failed)."""
        self.call("stop_auto_sync")


def _check_workflow_id(value: Any) -> str | None:
    if value is None:
        return "no workflow id given (the value is nil: is the variable that should hold it defined?)"
    if isinstance(value, str):
        return None if value else "no workflow id given (an empty string)"
    if lupa.lua_type(value) == "table" and value["workflow_id"] is not None:
        return "expected a workflow id, got a table: use the .workflow_id of the table gitops.workflow returned"
    return f"expected a workflow id (a string), got a {type_name(value)}"


# -- ai ----------------------------------------------------------------------------------------------


class AiModule:
    """``require("ai")``: predictions from, and records into, slipway's state store.

    A record a task makes of its own run (same task name, while it runs) is held until the task
    ends, so the runner can complete it — a failure recorded without a message gets the reason
    the run gave — and does not record that run a second time.
    """

    def __init__(self, engine: Callable[[], Any], conv: Converter, context: Callable[[], list[str]]) -> None:
        self._engine = engine
        self.conv = conv
        self._context = context
        self.current_task: str | None = None
        self.pending: list[dict[str, Any]] = []

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"predict_failure": self.predict_failure, "record_execution": self.record_execution}

    def predict_failure(self, task_name: Any = None, command: Any = None, *_: Any) -> Any:
        if not isinstance(task_name, str) or not task_name:
            message = f"expected a task name (a string), got {_lua_repr(task_name)}"
            log.error("ai.predict_failure: %s", message)
            return None, message
        cmd = command if isinstance(command, str) else None
        engine = self._engine()
        try:
            prediction = (
                engine.predict_failure(task_name, cmd, self._context())
                if engine is not None
                else insight.predict(task_name, cmd, [])
            )
        except Exception as e:  # an unreadable store: predict from nothing, and say so
            log.warning("ai.predict_failure(%s): cannot read the history: %s", json.dumps(task_name), describe(e))
            prediction = insight.predict(task_name, cmd, [])
        return self.conv.to_lua(prediction.to_dict())

    def record_execution(self, fields: Any = None, *_: Any) -> Any:
        try:
            data = self.conv.from_lua(fields, where="record_execution")
            own_run = self.current_task is not None and isinstance(data, dict)
            if own_run and data.get("task_name") == self.current_task:
                insight.validate(data)
                self.pending.append(data)
                return True
            self.write(data)
        except SlipwayError as e:
            log.error("ai.record_execution: %s", describe(e))
            return None, describe(e)
        return True

    def write(self, data: Any) -> None:
        engine = self._engine()
        if engine is None:
            raise SlipwayError("no state store is available to record into")
        engine.record_ai_execution(data)

    def begin_task(self, name: str) -> None:
        self.current_task = name
        self.pending = []

    def end_task(self, failure_message: str) -> bool:
        """Write the records the task made of itself; False when it made none."""
        pending, self.pending, self.current_task = self.pending, [], None
        for data in pending:
            if data.get("success") is False and not data.get("message") and failure_message:
                data = {**data, "message": failure_message}
            try:
                self.write(data)
            except SlipwayError as e:
                log.error("ai.record_execution: %s", describe(e))
        return bool(pending)
