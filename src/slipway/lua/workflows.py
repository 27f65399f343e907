"""Running what a script defined: each ``workflow.define`` in order, or the implicit workflow.

Lua describes (the ``task`` builder and ``workflow.define`` live in the prelude); Python runs.
For each workflow the tasks are put in dependency order (a stable depth-first order: the listed
order, with each task's dependencies pulled just before it), then each task runs with its
deadline and retries, and the callbacks fire in the seed's order::

    on_task_start(name) -> command(params, deps) [-> retries] -> on_success/on_failure(output, name)
      -> on_task_complete(name, success, output)   ... next task ...   -> on_complete(success, results)

A workflow stops at its first failed task, as a pipeline should: every later task is skipped (a
deploy step must not run after the check before it refused), and so is a task whose dependency
did not succeed. A skipped task does not start, and is reported through
``on_task_complete(name, false, {success = false, skipped = true, message = ...})``. Every task
that ran is recorded as an execution in the state store, for the ``ai`` module.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import lupa.lua54 as lupa

from ..durations import format_duration
from ..errors import SlipwayError, describe
from .chunk import CHUNK_NAME
from .convert import type_name

if TYPE_CHECKING:
    from .runtime import Session

_CHUNK_LINE = re.compile(re.escape(CHUNK_NAME) + r":(\d+)$")


class WorkflowError(SlipwayError):
    """A workflow that cannot run as defined: unknown dependencies, a cycle, a bad tasks list."""


@dataclass
class TaskDef:
    name: str
    where: str  # FILE:LINE of task(...)
    command: Any  # the Lua function
    command_where: str  # FILE:LINE of the function
    description: str = ""
    timeout: float | None = None
    timeout_text: str = ""
    retries: int = 0
    depends_on: list[str] = field(default_factory=list)
    on_success: Any = None
    on_failure: Any = None


@dataclass
class WorkflowDef:
    name: str
    where: str
    spec: Any  # the Lua table given to workflow.define, None for the implicit workflow
    tasks: list[TaskDef] | None = None  # set for the implicit workflow


@dataclass
class TaskRun:
    success: bool
    output: Any  # the Lua table handed to callbacks and dependents
    message: str
    attempts: int = 1
    duration: float = 0.0
    traceback: str = ""


def order_tasks(tasks: Sequence[TaskDef], defined: Collection[str] = ()) -> list[TaskDef]:
    """Dependencies first, otherwise in the given order; WorkflowError names what is wrong."""
    by_name: dict[str, TaskDef] = {}
    for t in tasks:
        if t.name in by_name:
            raise WorkflowError(f"task '{t.name}' is listed twice")
        by_name[t.name] = t
    problems = []
    for t in tasks:
        for dep in t.depends_on:
            if dep not in by_name:
                why = "which is not in this workflow's tasks" if dep in defined else "which is not defined"
                problems.append(f"task '{t.name}' depends on '{dep}', {why}")
    if problems:
        raise WorkflowError("unknown dependenc" + ("y: " if len(problems) == 1 else "ies: ") + "; ".join(problems))
    ordered: list[TaskDef] = []
    state: dict[str, int] = {}  # 1 while its dependencies are visited, 2 once placed

    def visit(t: TaskDef, path: list[str]) -> None:
        if state.get(t.name) == 2:
            return
        if state.get(t.name) == 1:
            cycle = [*path[path.index(t.name) :], t.name]
            raise WorkflowError("dependency cycle: " + " -> ".join(cycle))
        state[t.name] = 1
        path.append(t.name)
        for dep in t.depends_on:
            visit(by_name[dep], path)
        path.pop()
        state[t.name] = 2
        ordered.append(t)

    for t in tasks:
        visit(t, [])
    return ordered


def _array(table: Any) -> list[Any]:
    return [v for _, v in sorted(table.items(), key=lambda kv: kv[0])] if table is not None else []


class WorkflowRunner:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.console = session.console

    # -- reading what the script defined ---------------------------------------------------------

    def task_def(self, state: Any) -> TaskDef:
        rewrite = self.s.chunk.rewrite
        timeout = state["timeout"]
        return TaskDef(
            name=str(state["name"]),
            where=rewrite(str(state["where"])),
            command=state["command"],
            command_where=str(state["command_where"] or ""),
            description=str(state["description"] or ""),
            timeout=float(timeout) if timeout is not None else None,
            timeout_text=str(state["timeout_text"] or ""),
            retries=int(state["retries"] or 0),
            depends_on=[str(d) for d in _array(state["depends_on"])],
            on_success=state["on_success"],
            on_failure=state["on_failure"],
        )

    def workflows(self) -> list[WorkflowDef]:
        internals = self.s.internals
        defined = [
            WorkflowDef(str(w["name"]), self.s.chunk.rewrite(str(w["where"])), w["spec"])
            for w in _array(internals["workflows"])
        ]
        for wf, entry in zip(defined, _array(internals["workflows"]), strict=True):
            unknown = [str(k) for k in _array(entry["unknown"])]
            if unknown:
                self.console.log(
                    "warn",
                    f"workflow {wf.name} ({wf.where}): ignoring unknown setting(s) {', '.join(unknown)}; "
                    "known: description, version, metadata, tasks, on_task_start, on_task_complete, on_complete",
                )
        if defined:
            return defined
        built = [self.task_def(internals.task_state(t)) for t in _array(internals["built"])]
        if not built:
            return []
        name = PurePath(self.s.chunk.names[0]).stem if self.s.chunk.names else "main"
        return [WorkflowDef(name, "(implicit: the tasks the script built)", None, built)]

    def _tasks_of(self, wf: WorkflowDef) -> list[TaskDef]:
        if wf.tasks is not None:
            return wf.tasks
        listed = wf.spec["tasks"]
        if listed is None:
            raise WorkflowError("no tasks: give it tasks = { task1, task2 }")
        entries = list(listed.items())
        if not entries:
            raise WorkflowError(
                "its tasks list is empty: the variables it lists may be nil (defined in another file? "
                "run the files together: slipway run first.lua second.lua)"
            )
        keys = [k for k, _ in entries]
        if not all(type(k) is int and k > 0 for k in keys):
            raise WorkflowError("tasks must be a list, as in tasks = { build, deploy }")
        out = []
        for i in range(1, max(keys) + 1):
            value = listed[i]
            if value is None:
                raise WorkflowError(f"tasks[{i}] is nil (an undefined variable, or a task defined in another file?)")
            state = self.s.internals.task_state(value)
            if state is None and isinstance(value, str):
                named = self.s.internals.task_named(value)
                state = self.s.internals.task_state(named) if named is not None else None
                if state is None:
                    raise WorkflowError(f"tasks[{i}]: no task named '{value}' was built")
            if state is None:
                raise WorkflowError(f"tasks[{i}] is a {type_name(value)}, not a task")
            if state["command"] is None:
                raise WorkflowError(f"tasks[{i}]: task '{state['name']}' has no command")
            out.append(self.task_def(state))
        return out

    # -- running -------------------------------------------------------------------------------------

    def run_all(self) -> bool:
        ok = True
        for wf in self.workflows():
            ok = self.run(wf) and ok
        return ok

    def run(self, wf: WorkflowDef) -> bool:
        try:
            tasks = self._tasks_of(wf)
            defined = {str(t["name"]) for t in _array(self.s.internals["built"])}
            ordered = order_tasks(tasks, defined)
        except WorkflowError as e:
            self.console.log("error", f"workflow {wf.name} ({wf.where}): {e}")
            return False
        callbacks = {
            k: (wf.spec[k] if wf.spec is not None else None)
            for k in ("on_task_start", "on_task_complete", "on_complete")
        }
        self.console.log("info", f"workflow {wf.name}: {len(ordered)} task(s): {', '.join(t.name for t in ordered)}")
        results = self.s.runtime.table()
        status: dict[str, str] = {}
        ok = True
        first_failure: str | None = None
        for t in ordered:
            deps = self.s.runtime.table()
            blocked = []
            for dep in t.depends_on:
                deps[dep] = results[dep]
                if status.get(dep) != "succeeded":
                    blocked.append(dep)
            message = ""
            if blocked:
                message = "skipped: " + ", ".join(f"dependency '{d}' {status[d]}" for d in dict.fromkeys(blocked))
            elif first_failure is not None:
                message = f"skipped: task '{first_failure}' failed earlier in workflow {wf.name}"
            if message:
                output = self.s.conv.to_lua({"success": False, "skipped": True, "message": message})
                self.console.log("warn", f"task {t.name}: {message}")
                status[t.name] = "skipped"
                results[t.name] = output
                ok = False
                ok = self._callback(wf, "on_task_complete", callbacks["on_task_complete"], t.name, False, output) and ok
                continue
            ok = self._callback(wf, "on_task_start", callbacks["on_task_start"], t.name) and ok
            run = self.run_task(wf.name, t, deps)
            status[t.name] = "succeeded" if run.success else "failed"
            if not run.success and first_failure is None:
                first_failure = t.name
            results[t.name] = run.output
            ok = ok and run.success
            callback = t.on_success if run.success else t.on_failure
            label = f"task {t.name}: {'on_success' if run.success else 'on_failure'}"
            ok = self._callback(wf, label, callback, run.output, t.name) and ok
            ok = (
                self._callback(wf, "on_task_complete", callbacks["on_task_complete"], t.name, run.success, run.output)
                and ok
            )
        ok = self._callback(wf, "on_complete", callbacks["on_complete"], ok, results) and ok
        failed = [n for n, st in status.items() if st != "succeeded"]
        if ok:
            self.console.log("info", f"workflow {wf.name}: succeeded")
        else:
            detail = ", ".join(f"{n} {status[n]}" for n in failed) or "a callback failed"
            self.console.log("error", f"workflow {wf.name}: failed ({detail})")
        return ok

    def _callback(self, wf: WorkflowDef, label: str, fn: Any, *args: Any) -> bool:
        if fn is None:
            return True
        result = self.s.call(fn, *args)
        if not result.ok:
            self.console.log("error", f"workflow {wf.name}: {label} failed: {result.message}")
            if result.traceback:
                self.console.log("debug", result.traceback)
            return False
        return True

    def run_task(self, workflow_name: str, t: TaskDef, deps: Any) -> TaskRun:
        start = time.monotonic()
        self.s.ai.begin_task(t.name)
        self.console.last_error = ""
        attempts = 0
        while True:
            attempts += 1
            run = self._attempt(t, deps)
            if run.success or attempts > t.retries:
                break
            self.console.log(
                "warn", f"task {t.name}: attempt {attempts} of {t.retries + 1} failed: {run.message}; retrying"
            )
        run.attempts = attempts
        run.duration = time.monotonic() - start
        # What the run itself said last, for a failure that returned no message of its own.
        reason = run.message or (self.console.last_error if not run.success else "")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        if run.success:
            detail = f": {run.message}" if run.message else ""
            self.console.log("info", f"task {t.name}: succeeded in {format_duration(run.duration)}{tries}{detail}")
        else:
            said = run.message or "the command returned success = false without a message"
            self.console.log("error", f"task {t.name}: failed{tries}: {said}")
            if run.traceback:
                self.console.log("debug", run.traceback)
        if not self.s.ai.end_task(reason):
            self._record(workflow_name, t, run, reason)
        return run

    def _attempt(self, t: TaskDef, deps: Any) -> TaskRun:
        params = self.s.conv.to_lua(dict(self.s.params))
        deadline = time.monotonic() + t.timeout if t.timeout else None
        result = self.s.call(t.command, params, deps, deadline=deadline)
        if result.timed_out:
            at = f" (at {result.where})" if result.where else ""
            return self._failure(f"timed out after {t.timeout_text}{at}", timed_out=True)
        if not result.ok:
            return self._failure(result.message, traceback=result.traceback)
        return self._normalize(result.values)

    def _failure(self, message: str, *, traceback: str = "", timed_out: bool = False) -> TaskRun:
        fields: dict[str, Any] = {"success": False, "message": message}
        if timed_out:
            fields["timed_out"] = True
        return TaskRun(False, self.s.conv.to_lua(fields), message, traceback=traceback)

    def _normalize(self, values: list[Any]) -> TaskRun:
        """The two return forms the seed allows: a table with ``success``, or ``ok, message``."""
        expected = 'return {success = true|false, message = "..."} or true|false, "message"'
        first: Any = values[0] if values else None
        if isinstance(first, bool):
            second = values[1] if len(values) > 1 else None
            message = str(second) if isinstance(second, (str, int, float)) and not isinstance(second, bool) else ""
            output = self.s.conv.to_lua({"success": first, "message": message})
            return TaskRun(first, output, message)
        kind = lupa.lua_type(first)
        if kind == "table":
            success = first["success"]
            if not isinstance(success, bool):
                got = type_name(success)
                return self._failure(f"the command returned a table whose success is {got}, not a boolean; {expected}")
            message = first["message"]
            text = str(message) if isinstance(message, (str, int, float)) and not isinstance(message, bool) else ""
            return TaskRun(success, first, text)
        got = "nothing" if first is None else f"a {type_name(first)}"
        return self._failure(f"the command returned {got}; {expected}")

    def _record(self, workflow_name: str, t: TaskDef, run: TaskRun, message: str) -> None:
        engine = self.s.engine()
        if engine is None:
            return
        where = self.s.chunk.rewrite(t.command_where)
        command = t.command_where
        match = _CHUNK_LINE.match(t.command_where)
        if match:
            file, line = self.s.chunk.locate(int(match.group(1)))
            command = f"lua:{PurePath(file).name}:{line}"
        details = {
            "source": "slipway run",
            "workflow": workflow_name,
            "attempts": run.attempts,
            "defined_at": where,
            "description": t.description,
        }
        try:
            engine.record_execution(t.name, command, run.success, run.duration, message, details)
        except Exception as e:  # history is a help, never a reason to fail a task
            self.console.log("warn", f"task {t.name}: could not record the execution: {describe(e)}")
