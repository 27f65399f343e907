"""The Lua runtime: the bridge to the gitops API, the task/workflow DSL, the sandbox, the line map.

These tests inject a small deterministic object with the gitops functions (``FakeGitops``): they
test the Lua <-> Python bridge and the DSL, not GitOps, which the cluster and e2e tests cover.
"""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import NotFoundError
from slipway.lua import run_script, wait_for_signal_default
from slipway.store import Store

SEED = Path(__file__).parents[2] / "examples" / "seed"
fake_log = logging.getLogger("slipway.fake")


class FakeGitops:
    """The gitops functions, in memory and deterministic."""

    def __init__(self, *, store: Store | None = None, impact: str = "low", delete: str | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.repos: dict[str, dict[str, Any]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.impact = impact
        self.delete = delete
        self.running = False
        if store is not None:
            engine = Engine(store)  # the real engine, on the test's store: the ai module records through it
            self.engine = lambda: engine

    def register_repository(self, config: dict[str, Any]) -> str:
        self.calls.append(("register_repository", config))
        rid = config.get("id") or f"repo-{len(self.repos) + 1}"
        self.repos[rid] = config
        return rid

    def create_workflow(self, config: dict[str, Any]) -> str:
        self.calls.append(("create_workflow", config))
        if config.get("repository") not in self.repos:
            raise NotFoundError(f"workflow: repository {config.get('repository')!r} is not registered")
        wid = config.get("id") or f"workflow-{len(self.workflows) + 1}"
        self.workflows[wid] = config
        return wid

    def workflow(self, config: dict[str, Any]) -> dict[str, Any]:
        rid = self.register_repository({"url": config["repo"]})
        wid = self.create_workflow({"repository": rid, **{k: v for k, v in config.items() if k != "repo"}})
        return {"workflow_id": wid, "repository_id": rid, "status": "created", "auto_sync": False}

    def _get(self, wid: str) -> dict[str, Any]:
        if wid not in self.workflows:
            raise NotFoundError(f"workflow {wid!r} does not exist")
        return self.workflows[wid]

    def get_workflow_status(self, wid: str) -> dict[str, Any]:
        wf = self._get(wid)
        return {
            "id": wid,
            "name": wf.get("name", wid),
            "status": "synced",
            "auto_sync": bool(wf.get("auto_sync")),
            "repository": wf["repository"],
            "last_sync_result": {
                "id": "sync-1",
                "status": "succeeded",
                "commit_hash": None,
                "metrics": {"duration": "1.5s", "resources_applied": 2},
            },
        }

    def list_workflows(self) -> list[dict[str, Any]]:
        return [self.get_workflow_status(w) for w in self.workflows]

    def sync_workflow(self, wid: str) -> bool:
        self.calls.append(("sync_workflow", wid))
        if wid not in self.workflows:
            fake_log.error("sync_workflow(%r): workflow %r does not exist", wid, wid)
            return False
        return True

    def generate_diff(self, wid: str) -> dict[str, Any]:
        self.calls.append(("generate_diff", wid))
        self._get(wid)
        changes: list[dict[str, Any]] = [{"type": "update", "resource": "Deployment/web", "impact": self.impact}]
        if self.delete:
            changes.append({"type": "delete", "resource": self.delete, "impact": "critical"})
        return {
            "workflow_id": wid,
            "summary": {
                "total_changes": len(changes),
                "created_resources": 0,
                "updated_resources": 1,
                "deleted_resources": len(changes) - 1,
                "conflict_count": 0,
                "warning_count": 1,
            },
            "changes": changes,
            "conflicts": [],
            "warnings": ["High-impact change detected: Deployment/web"],
        }

    preview_changes = generate_diff

    def rollback_workflow(self, wid: str | None, reason: str = "") -> bool:
        self.calls.append(("rollback_workflow", wid, reason))
        return wid in self.workflows

    def start_auto_sync(self) -> None:
        self.calls.append(("start_auto_sync",))
        self.running = True

    def stop_auto_sync(self) -> None:
        self.calls.append(("stop_auto_sync",))
        self.running = False

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(
    tmp_path: Path,
    *scripts: tuple[str, str] | Path,
    params: dict[str, str] | None = None,
    api: Any = None,
    stdin: io.StringIO | None = None,
    debug: bool = False,
    wait: Any = None,
) -> Result:
    paths = []
    for s in scripts:
        if isinstance(s, Path):
            paths.append(s)
        else:
            name, text = s
            p = tmp_path / name
            p.write_text(text)
            paths.append(p)
    out, err = io.StringIO(), io.StringIO()
    code = run_script(
        paths,
        params or {},
        stdin=stdin if stdin is not None else io.StringIO(""),
        out=out,
        err=err,
        gitops_api=api if api is not None else FakeGitops(),
        debug=debug,
        wait_for_signal=wait,
    )
    return Result(code, out.getvalue(), err.getvalue())


def closed_stdin() -> io.StringIO:
    s = io.StringIO("y\n")
    s.close()
    return s


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("SLIPWAY_HOME", str(tmp_path / "home"))
    s = Store()
    yield s
    s.close()


# -- the runtime and the bridge ----------------------------------------------------------------------


def test_it_is_lua_54(tmp_path: Path) -> None:
    r = run(tmp_path, ("v.lua", "print(_VERSION, math.type(1), math.type(1.0), 7 // 2, 1 << 4)"))
    assert r.code == 0
    assert r.out == "Lua 5.4\tinteger\tfloat\t3\t16\n"


def test_tables_in_and_out(tmp_path: Path) -> None:
    api = FakeGitops()
    script = """
    local gitops = require("gitops")
    local repo = gitops.register_repository({
        id = "r1", url = "https://git.example.com/a.git",
        credentials = {type = "token", token = "t0k"},
        hooks = {"one", "two", {nested = {1, 2, 3}}},
        empty = {}, ratio = 0.5, count = 3, flag = false,
    })
    print(type(repo), repo)
    local wf = gitops.create_workflow({id = "w1", repository = repo})
    local st = gitops.get_workflow_status(wf)
    print(st.id, st.status, st.last_sync_result.metrics.duration, st.last_sync_result.commit_hash == nil)
    local all = gitops.list_workflows()
    print(#all, all[1].id, all[1].repository, type(all[0]))
    local diff = gitops.generate_diff(wf)
    print(diff.summary.total_changes, #diff.changes, diff.changes[1].resource, #diff.conflicts, diff.warnings[1])
    """
    r = run(tmp_path, ("t.lua", script), api=api)
    assert r.code == 0, r.err
    assert api.calls[0] == (
        "register_repository",
        {
            "id": "r1",
            "url": "https://git.example.com/a.git",
            "credentials": {"type": "token", "token": "t0k"},
            "hooks": ["one", "two", {"nested": [1, 2, 3]}],
            "empty": {},
            "ratio": 0.5,
            "count": 3,
            "flag": False,
        },
    )
    assert isinstance(api.calls[0][1]["count"], int)
    assert r.out.splitlines() == [
        "string\tr1",
        "w1\tsynced\t1.5s\ttrue",
        "1\tw1\tr1\tnil",
        "1\t1\tDeployment/web\t0\tHigh-impact change detected: Deployment/web",
    ]
    assert "t0k" not in r.err  # configuration tables are never logged


def test_a_failing_call_returns_nil_and_a_message_and_logs_it(tmp_path: Path) -> None:
    script = """
    local gitops = require("gitops")
    local id, msg2 = gitops.create_workflow({repository = "missing"})
    print(id, msg2)
    print(gitops.sync_workflow("nope"))
    print(gitops.get_workflow_status({workflow_id = "x"}))
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 0
    assert r.out.splitlines() == [
        "nil\tworkflow: repository 'missing' is not registered",
        "false",
        "nil\texpected a workflow id, got a table: use the .workflow_id of the table gitops.workflow returned",
    ]
    assert "ERROR gitops.create_workflow: workflow: repository 'missing' is not registered" in r.err
    # The API's own log records reach the script's log.
    assert "ERROR sync_workflow('nope'): workflow 'nope' does not exist" in r.err


@pytest.mark.parametrize("call", ['generate_diff("nope")', 'preview_changes("nope")', "generate_diff(nil)"])
def test_a_diff_that_cannot_be_computed_raises_at_the_callers_line(tmp_path: Path, call: str) -> None:
    # A nil diff reads as "no changes" in the seed's examples: it must never come back.
    script = f"""
    local gitops = require("gitops")
    local ok, err = pcall(function() return gitops.{call} end)
    print(ok, err)
    local d = gitops.{call}
    print("not reached", d)
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code != 0 and "not reached" not in r.out
    first = r.out.splitlines()[0]
    assert first.startswith("false\t") and "gitops." in first
    cause = "does not exist" if "nope" in call else "no workflow id given"
    assert cause in first
    assert re.search(r"t\.lua:5: gitops\.(generate_diff|preview_changes)\(.*\): .*" + cause, r.err), r.err


def test_an_unexpected_python_error_does_not_escape_into_lua(tmp_path: Path) -> None:
    class Broken(FakeGitops):
        def list_workflows(self) -> list[dict[str, Any]]:
            raise RuntimeError("database is on fire")

    r = run(tmp_path, ("t.lua", 'print(require("gitops").list_workflows())\nprint("still here")'), api=Broken())
    assert r.code == 0
    assert r.out == "nil\tRuntimeError: database is on fire\nstill here\n"
    assert "ERROR gitops.list_workflows: RuntimeError: database is on fire" in r.err


def test_rollback_of_nil_returns_false_and_logs_a_clear_error(tmp_path: Path) -> None:
    api = FakeGitops()
    r = run(tmp_path, ("t.lua", 'print(require("gitops").rollback_workflow(undefined_id, "why"))'), api=api)
    assert r.code == 0
    assert r.out.startswith("false\t")
    assert "ERROR gitops.rollback_workflow(nil): no workflow id given (the value is nil" in r.err
    assert "rollback_workflow" not in api.names()  # caught before reaching the API


def test_log_module_format_and_debug(tmp_path: Path) -> None:
    script = 'local log = require("log")\nlog.info("a", 1, nil)\nlog.warn("w")\nlog.error("e")\nlog.debug("d")\n'
    quiet = run(tmp_path, ("t.lua", script))
    lines = quiet.err.splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines] == ["INFO  a 1 nil", "WARN  w", "ERROR e"]
    assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in lines)
    loud = run(tmp_path, ("t.lua", script), debug=True)
    assert loud.err.splitlines()[-1].endswith("DEBUG d")


def test_python_logging_is_routed_and_restored(tmp_path: Path) -> None:
    logger = logging.getLogger("slipway")
    before = (logger.level, logger.propagate, list(logger.handlers))
    r = run(tmp_path, ("t.lua", 'require("gitops").sync_workflow("ghost")'))
    assert "ERROR sync_workflow('ghost')" in r.err
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


# -- tasks and workflows ---------------------------------------------------------------------------


def test_dependency_order_params_deps_and_true_message_returns(tmp_path: Path) -> None:
    script = """
    local deploy = task("deploy"):depends_on({"build", "test"}):command(function(params, deps)
        print("deploy", params.env, deps.build.message, deps.test.message, deps.lint)
        return {success = true, message = "deployed", extra = 42}
    end):build()
    local test = task("test"):depends_on("build"):command(function(params, deps)
        print("test", deps.build.artifact)
        return true, "tested"
    end):build()
    local build = task("build"):command(function(params, deps)
        print("build", params.env, type(params.count), next(deps))
        return {success = true, message = "built", artifact = "img:1"}
    end):build()
    workflow.define("ship", {
        tasks = {deploy, test, build},
        on_complete = function(ok, results) print("complete", ok, results.deploy.extra, results.test.message) end,
    })
    """
    r = run(tmp_path, ("t.lua", script), params={"env": "prod", "count": "3"})
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "build\tprod\tstring\tnil",
        "test\timg:1",
        "deploy\tprod\tbuilt\ttested\tnil",
        "complete\ttrue\t42\ttested",
    ]
    assert "workflow ship: 3 task(s): build, test, deploy" in r.err


def test_callbacks_fire_in_order_with_their_arguments(tmp_path: Path) -> None:
    script = """
    local a = task("a"):command(function() return true, "A done" end)
        :on_success(function(out, name) print("on_success", name, out.message) end):build()
    local b = task("b"):depends_on(a):command(function() return {success = false, message = "B broke"} end)
        :on_failure(function(out, name) print("on_failure", name, out.message) end):build()
    workflow.define("cb", {
        tasks = {a, b},
        on_task_start = function(name) print("start", name) end,
        on_task_complete = function(name, ok, out) print("task_complete", name, ok, out.message) end,
        on_complete = function(ok, results) print("complete", ok, results.a.message, results.b.message) end,
    })
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 1
    assert r.out.splitlines() == [
        "start\ta",
        "on_success\ta\tA done",
        "task_complete\ta\ttrue\tA done",
        "start\tb",
        "on_failure\tb\tB broke",
        "task_complete\tb\tfalse\tB broke",
        "complete\tfalse\tA done\tB broke",
    ]
    assert "ERROR task b: failed: B broke" in r.err


def test_a_failing_callback_fails_the_workflow_but_not_the_other_tasks(tmp_path: Path) -> None:
    script = """
    local a = task("a"):command(function() print("a ran") return true end):build()
    local b = task("b"):command(function() print("b ran") return true end):build()
    workflow.define("w", {
        tasks = {a, b},
        on_task_start = function(name) if name == "a" then local t = nil; t.x = 1 end end,
    })
    """
    r = run(tmp_path, ("cb.lua", script))
    assert r.code == 1
    assert r.out.splitlines() == ["a ran", "b ran"]
    assert f"ERROR workflow w: on_task_start failed: {tmp_path / 'cb.lua'}:6: attempt to index a nil value" in r.err


def test_ctrl_c_inside_a_gitops_call_is_not_swallowed(tmp_path: Path) -> None:
    class Interrupted(FakeGitops):
        def sync_workflow(self, wid: str) -> bool:
            raise KeyboardInterrupt

    api = Interrupted()
    script = """
    local gitops = require("gitops")
    gitops.start_auto_sync()
    task("t"):command(function() return gitops.sync_workflow("x"), "synced" end):build()
    """
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, ("int.lua", script), api=api, wait=lambda: "unexpected")
    assert api.names() == ["start_auto_sync", "stop_auto_sync"]


def test_workflows_run_in_definition_order(tmp_path: Path) -> None:
    script = """
    local t1 = task("one"):command(function() print("one") return true end):build()
    local t2 = task("two"):command(function() print("two") return true end):build()
    workflow.define("second", {tasks = {t2}})
    workflow.define("first", {tasks = {t1}})
    print("chunk done")
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 0
    assert r.out.splitlines() == ["chunk done", "two", "one"]


def test_a_failed_task_stops_the_workflow_and_skips_its_dependents(tmp_path: Path) -> None:
    script = """
    local a = task("a"):command(function() return false, "no" end):build()
    local b = task("b"):depends_on(a):command(function() print("b ran") return true end):build()
    local c = task("c"):depends_on(b):command(function() print("c ran") return true end):build()
    local d = task("d"):command(function() print("d ran") return true end):build()
    workflow.define("w", {
        tasks = {a, b, c, d},
        on_task_start = function(name) print("start", name) end,
        on_task_complete = function(name, ok, out) print("done", name, ok, out.skipped, out.message) end,
    })
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 1
    assert r.out.splitlines() == [
        "start\ta",
        "done\ta\tfalse\tnil\tno",
        "done\tb\tfalse\ttrue\tskipped: dependency 'a' failed",
        "done\tc\tfalse\ttrue\tskipped: dependency 'b' skipped",
        "done\td\tfalse\ttrue\tskipped: task 'a' failed earlier in workflow w",
    ]
    assert "d ran" not in r.out
    assert "workflow w: failed (a failed, b skipped, c skipped, d skipped)" in r.err


def test_retries_rerun_a_failing_command(tmp_path: Path) -> None:
    script = """
    local n = 0
    task("flaky"):retries(2):command(function()
        n = n + 1
        if n < 3 then error("attempt " .. n .. " failed") end
        return true, "worked on attempt " .. n
    end):build()
    local m = 0
    task("hopeless"):retries(1):command(function() m = m + 1; return false, "try " .. m end):build()
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 1
    assert "WARN  task flaky: attempt 1 of 3 failed: " in r.err and "t.lua:5: attempt 1 failed; retrying" in r.err
    assert "task flaky: succeeded in" in r.err and "after 3 attempts: worked on attempt 3" in r.err
    assert "ERROR task hopeless: failed after 2 attempts: try 2" in r.err


@pytest.mark.timeout(30, method="thread")
def test_timeout_stops_a_runaway_task_even_inside_pcall_and_coroutines(tmp_path: Path) -> None:
    script = """
    local spin = task("spin"):timeout("0.2s"):command(function()
        pcall(function() while true do end end)
        while true do end
    end):build()
    local spin_co = task("spin_co"):timeout(0.2):command(function()
        coroutine.wrap(function() while true do end end)()
    end):build()
    local quick = task("quick"):timeout("5s"):command(function() return true, "fast" end):build()
    workflow.define("a", {tasks = {spin}})
    workflow.define("b", {tasks = {spin_co}})
    workflow.define("c", {tasks = {quick}})
    """
    start = time.monotonic()
    r = run(tmp_path, ("t.lua", script))
    assert time.monotonic() - start < 5
    assert r.code == 1
    assert re.search(r"ERROR task spin: failed: timed out after 0\.2s \(at .*t\.lua:4\)", r.err)
    assert re.search(r"ERROR task spin_co: failed: timed out after 0\.2s \(at .*t\.lua:7\)", r.err)
    assert "task quick: succeeded" in r.err


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("nil", "the command returned nothing"),
        ('"yes"', "the command returned a string"),
        ('{message = "no success field"}', "the command returned a table whose success is nil, not a boolean"),
    ],
)
def test_other_returns_fail_clearly(tmp_path: Path, returned: str, expected: str) -> None:
    r = run(tmp_path, ("t.lua", f'task("odd"):command(function() return {returned} end):build()'))
    assert r.code == 1
    assert f"ERROR task odd: failed: {expected}" in r.err


def test_builder_mistakes_are_errors_at_the_callers_line(tmp_path: Path) -> None:
    cases = {
        'task("x"):timeout("soon")': "task \"x\": timeout: 'soon' is not a duration",
        'task("x"):retries(-1)': 'task "x": retries: expected a whole number >= 0',
        'task("x"):build()': 'task "x": no command',
        'task("x").description("d")': "description: call it with ':' on a task",
        'task("x"):depends_on(nil)': 'task "x": depends_on: a dependency is nil',
        'workflow.define("w", {on_complete = 1})': 'workflow "w": on_complete must be a function',
    }
    for code, message in cases.items():
        r = run(tmp_path, ("t.lua", f"local pad = 1\n{code}\n"))
        assert r.code == 1, code
        assert r.err.startswith(f"error: {tmp_path / 't.lua'}:2: {message}"), (code, r.err)


def test_unknown_dependencies_and_cycles_are_named(tmp_path: Path) -> None:
    script = """
    local a = task("a"):depends_on("b"):command(function() return true end):build()
    local b = task("b"):depends_on("c"):command(function() return true end):build()
    local c = task("c"):depends_on("a"):command(function() return true end):build()
    local d = task("d"):depends_on("ghost", c):command(function() return true end):build()
    workflow.define("cyclic", {tasks = {a, b, c}})
    workflow.define("dangling", {tasks = {d}})
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 1
    assert re.search(r"workflow cyclic \(.*t\.lua:6\): dependency cycle: a -> b -> c -> a", r.err)
    assert (
        "unknown dependencies: task 'd' depends on 'ghost', which is not defined; "
        "task 'd' depends on 'c', which is not in this workflow's tasks" in r.err
    )


def test_an_implicit_workflow_runs_built_tasks_in_build_order(tmp_path: Path) -> None:
    script = """
    task("first"):command(function() print("first") return true end):build()
    task("never_built"):command(function() print("never") return true end)
    task("second"):command(function() print("second") return true end):build()
    """
    r = run(tmp_path, ("deploy.lua", script))
    assert r.code == 0
    assert r.out.splitlines() == ["first", "second"]
    assert "workflow deploy: 2 task(s): first, second" in r.err


def test_a_workflow_with_nil_tasks_says_why(tmp_path: Path) -> None:
    r = run(tmp_path, ("w.lua", 'workflow.define("w", {tasks = {not_defined_here}})'))
    assert r.code == 1
    assert "its tasks list is empty: the variables it lists may be nil" in r.err


# -- errors, the line map, exit codes --------------------------------------------------------------


def test_errors_name_the_original_file_and_line_across_files(tmp_path: Path) -> None:
    first = "-- one\nlocal helper = {}\nfunction helper.explode(t) return t.missing.field end\n"
    second = "\nlocal t = task('boom'):command(function()\n  local v = helper.explode({})\n  return v\nend):build()\n"
    r = run(tmp_path, ("first.lua", first), ("second.lua", second), debug=True)
    assert r.code == 1
    assert (
        f"ERROR task boom: failed: {tmp_path / 'first.lua'}:3: attempt to index a nil value (field 'missing')" in r.err
    )
    # The traceback is mapped too, and shows no frame of the runtime itself.
    assert f"{tmp_path / 'second.lua'}:3: in " in r.err
    assert "slipway.chunk" not in r.err and "slipway.prelude" not in r.err


def test_a_top_level_error_exits_1_with_file_and_line(tmp_path: Path) -> None:
    ok = "local x = 1\n" * 5
    bad = 'task("never"):command(function() print("ran") return true end):build()\nlocal cfg = nil\nprint(cfg.name)\n'
    r = run(tmp_path, ("ok.lua", ok), ("bad.lua", bad))
    assert r.code == 1
    assert r.err.splitlines()[-1] == f"error: {tmp_path / 'bad.lua'}:3: attempt to index a nil value (local 'cfg')"
    assert "ran" not in r.out  # a broken script runs no workflow


def test_a_compile_error_exits_2_with_file_and_line(tmp_path: Path) -> None:
    ok = "local x = 1\n"
    bad = "local function f()\n  if x then\n    return 1\nend\n"
    r = run(tmp_path, ("ok.lua", ok), ("bad.lua", bad))
    assert r.code == 2
    (line,) = r.err.splitlines()
    assert line.startswith(f"error: {tmp_path / 'bad.lua'}:")
    assert f"'end' expected (to close 'function' at {tmp_path / 'bad.lua'}:1) near <eof>" in line


def test_an_unreadable_file_exits_2(tmp_path: Path) -> None:
    r = run(tmp_path, tmp_path / "missing.lua")
    assert r.code == 2
    assert r.err.startswith(f"error: cannot read {tmp_path / 'missing.lua'}")


def test_a_shebang_line_is_skipped_and_lines_still_match(tmp_path: Path) -> None:
    r = run(tmp_path, ("s.lua", "#!/usr/bin/env slipway run\nlocal a = nil\nreturn a.b\n"))
    assert r.code == 1
    assert f"{tmp_path / 's.lua'}:3: attempt to index a nil value" in r.err


# -- io, print and the sandbox ---------------------------------------------------------------------


def test_io_read_reads_stdin_lines_and_nil_at_the_end(tmp_path: Path) -> None:
    script = 'print(io.read())\nprint(io.read("n"))\nprint(io.read("L"))\nprint(io.read())\nio.write("a", 1, "\\n")'
    r = run(tmp_path, ("t.lua", script), stdin=io.StringIO("yes\n42\nlast\n"))
    assert r.code == 0
    assert r.out == "yes\n42\nlast\n\nnil\na1\n"


def test_io_read_on_closed_stdin_fails_the_task_not_the_runner(tmp_path: Path) -> None:
    script = """
    task("ask"):command(function()
        print("Proceed? (y/N)")
        local response = io.read()
        if response:lower() ~= "y" then return false, "cancelled" end
        return true
    end):build()
    task("other"):command(function() return true, "still ran" end):build()
    """
    r = run(tmp_path, ("ask.lua", script), stdin=closed_stdin())
    assert r.code == 1
    assert f"ERROR task ask: failed: {tmp_path / 'ask.lua'}:5: attempt to index a nil value (local 'response')" in r.err
    assert "task other: skipped: task 'ask' failed earlier" in r.err


def test_the_sandbox_removes_dangerous_functions(tmp_path: Path) -> None:
    script = """
    print(os.execute, os.exit, os.remove, os.getenv, io.popen, io.open, dofile, loadfile, package, python)
    print(debug.sethook, debug.getinfo, string.dump, ("").dump, require("os").execute)
    print(type(os.time()), type(os.clock()), type(os.date("%Y")), type(string.format), type(table.concat))
    print(load("return 6 * 7")())
    print(load("\\27Lua", "bin", "b"))
    print(require("io") == io, pcall(require, "socket"))
    print(pcall(io.lines, "/etc/passwd"))
    """
    r = run(tmp_path, ("t.lua", script))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "\t".join(["nil"] * 10)
    assert lines[1] == "\t".join(["nil"] * 5)
    assert lines[2] == "number\tnumber\tstring\tfunction\tfunction"
    assert lines[3] == "42"
    assert lines[4] == 'nil\tload: only text chunks (mode "t") are allowed in slipway scripts'
    assert lines[5].startswith('true\tfalse\tmodule "socket" not found: slipway scripts can require gitops')
    assert lines[6].startswith("false\t") and "cannot read files" in lines[6]


# -- auto-sync ------------------------------------------------------------------------------------


def test_auto_sync_keeps_running_until_a_signal(tmp_path: Path) -> None:
    api = FakeGitops()
    waited: list[list[str]] = []

    def wait() -> str:
        waited.append(api.names())
        return "SIGTERM received"

    r = run(tmp_path, ("s.lua", 'require("gitops").start_auto_sync()\nprint("last line")'), api=api, wait=wait)
    assert r.code == 0
    assert waited == [["start_auto_sync"]]  # the wait came after the script, before the stop
    assert api.names() == ["start_auto_sync", "stop_auto_sync"]
    assert "the auto-sync controller keeps running" in r.err
    assert "Stop it with Ctrl-C or SIGTERM" in r.err
    assert "SIGTERM received: stopping the auto-sync controller" in r.err


def test_no_wait_when_the_script_stopped_auto_sync_itself(tmp_path: Path) -> None:
    api = FakeGitops()

    def wait() -> str:
        raise AssertionError("must not wait")

    script = 'local g = require("gitops")\ng.start_auto_sync()\ng.stop_auto_sync()'
    r = run(tmp_path, ("s.lua", script), api=api, wait=wait)
    assert r.code == 0
    assert "keeps running" not in r.err


def test_a_failing_script_stops_the_controller_it_started(tmp_path: Path) -> None:
    api = FakeGitops()

    def wait() -> str:
        raise AssertionError("must not wait")

    r = run(tmp_path, ("s.lua", 'require("gitops").start_auto_sync()\nerror("later")'), api=api, wait=wait)
    assert r.code == 1
    assert api.names() == ["start_auto_sync", "stop_auto_sync"]


def test_the_default_wait_returns_on_sigterm_and_restores_handlers() -> None:
    assert threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert wait_for_signal_default() == "SIGTERM received"
    finally:
        timer.cancel()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_the_default_wait_ends_when_the_controller_stops() -> None:
    deadline = time.monotonic() + 0.3
    assert wait_for_signal_default(lambda: time.monotonic() < deadline) == "the auto-sync controller stopped"


# -- the ai module and the execution history ---------------------------------------------------------


def test_every_task_run_is_recorded(tmp_path: Path, store: Store) -> None:
    script = """
    task("good"):description("works"):command(function() return true, "fine" end):build()
    task("bad"):command(function()
        require("log").error("kubectl said: forbidden")
        return {success = false}
    end):build()
    """
    r = run(tmp_path, ("rec.lua", script), api=FakeGitops(store=store))
    assert r.code == 1
    (good,) = store.executions("good")
    assert good["success"] == 1 and good["message"] == "fine" and good["command"] == "lua:rec.lua:2"
    assert good["duration"] is not None and good["duration"] >= 0
    (bad,) = store.executions("bad")
    assert bad["success"] == 0 and bad["message"] == "kubectl said: forbidden"


def test_ai_module_predicts_from_the_recorded_history(tmp_path: Path, store: Store) -> None:
    for ok in (True, False, False, False):
        store.record_execution("deploy", "kubectl apply -f m/", ok, 5.0, "" if ok else "quota exceeded", {})
    script = """
    local ai = require("ai")
    local p = ai.predict_failure("deploy", "kubectl apply -f m/")
    print(math.type(p.failure_probability), p.failure_probability > 0.25, p.failure_probability <= 1)
    for _, rec in ipairs(p.recommendations) do print(rec) end
    local fresh = ai.predict_failure("brand_new", "x")
    print(fresh.failure_probability, fresh.recommendations[1]:match("^no history yet") ~= nil)
    print(ai.record_execution({task_name = "elsewhere", success = true, execution_time = "2s", note = "n"}))
    print(ai.record_execution({success = true}))
    """
    r = run(tmp_path, ("ai.lua", script), api=FakeGitops(store=store))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "float\ttrue\ttrue"
    assert any("quota exceeded" in line for line in lines)
    assert "0.2\ttrue" in lines
    assert "true" in lines
    assert any(line.startswith("nil\ttask_name: required") for line in lines)
    (row,) = store.executions("elsewhere")
    assert row["duration"] == 2.0 and '"note": "n"' in row["details"]


def test_a_task_that_records_itself_is_recorded_once(tmp_path: Path, store: Store) -> None:
    script = """
    local ai = require("ai")
    task("self_aware"):command(function()
        require("log").error("sync failed: webhook denied")
        ai.record_execution({task_name = "self_aware", command = "kubectl apply", success = false,
                             execution_time = "30s"})
        return {success = false}
    end):build()
    """
    r = run(tmp_path, ("s.lua", script), api=FakeGitops(store=store))
    assert r.code == 1
    (row,) = store.executions("self_aware")
    assert row["command"] == "kubectl apply" and row["duration"] == 30.0
    assert row["message"] == "sync failed: webhook denied"


# -- the seed's examples, as written -----------------------------------------------------------------


def test_seed_01_quick_setup(tmp_path: Path) -> None:
    r = run(tmp_path, SEED / "01_quick_setup.lua")
    assert r.code == 0, r.err
    assert "INFO  workflow workflow-1 on repository repo-1 is created" in r.err


def test_seed_02_repository_and_workflow(tmp_path: Path) -> None:
    api = FakeGitops()
    r = run(tmp_path, SEED / "02_repository_and_workflow.lua", api=api)
    assert r.code == 0, r.err
    assert api.workflows["production-workflow"]["sync_policy"]["retry"] == {"limit": 3, "backoff": "exponential"}
    assert "INFO  Production Infrastructure: synced" in r.err
    assert "INFO  workflow production-workflow" in r.err
    assert "ghp_xxxxxxxxxxxx" not in r.err


def test_seed_03_multi_environment_keeps_auto_sync_running(tmp_path: Path) -> None:
    api = FakeGitops()
    r = run(tmp_path, SEED / "03_multi_environment.lua", api=api, wait=lambda: "SIGINT received")
    assert r.code == 0, r.err
    assert sorted(api.workflows) == ["development-workflow", "production-workflow", "staging-workflow"]
    assert api.names()[-2:] == ["start_auto_sync", "stop_auto_sync"]
    assert "keeps running (2 auto_sync workflows)" in r.err


def test_seed_04_05_08_as_one_chunk_with_closed_stdin(tmp_path: Path) -> None:
    api = FakeGitops(impact="high")
    files = [SEED / "04_production_deploy.lua", SEED / "05_kubernetes_gitops.lua", SEED / "08_dsl_pipeline.lua"]
    r = run(tmp_path, *files, api=api, stdin=closed_stdin(), params={"workflow_id": "production-workflow"})
    assert r.code == 1
    expected = f"{SEED / '04_production_deploy.lua'}:69: attempt to index a nil value (local 'response')"
    assert f"ERROR task production_deploy: failed: {expected}" in r.err
    assert "ERROR GitOps task failed: production_deploy" in r.err
    assert "ERROR gitops.rollback_workflow(nil): no workflow id given" in r.err
    # The pipeline stops at the failed check: the deploy task after it must not run.
    assert "task kubernetes_gitops_deploy: skipped: task 'production_deploy' failed earlier" in r.err
    assert "ERROR GitOps pipeline failed - check logs for details" in r.err
    assert r.out.count("High-impact changes detected. Proceed? (y/N)") == 2  # production_pipeline, gitops_pipeline
    assert "slipway.chunk" not in r.err


def test_seed_04_05_08_without_high_impact_changes_deploy(tmp_path: Path) -> None:
    api = FakeGitops(impact="low")
    files = [SEED / "04_production_deploy.lua", SEED / "05_kubernetes_gitops.lua", SEED / "08_dsl_pipeline.lua"]
    r = run(tmp_path, *files, api=api, stdin=closed_stdin(), params={"workflow_id": "production-workflow"})
    assert r.code == 0, r.err
    assert "INFO  GitOps pipeline completed successfully!" in r.err
    assert "Applied 2 resources" in r.err
    assert api.names().count("sync_workflow") == 3


def test_seed_05_alone_runs_its_task(tmp_path: Path) -> None:
    api = FakeGitops(delete="Namespace/legacy")
    api.register_repository({"id": "r"})
    api.create_workflow({"id": "wf", "repository": "r"})
    r = run(
        tmp_path, SEED / "05_kubernetes_gitops.lua", api=api, params={"workflow_id": "wf"}, stdin=io.StringIO("y\n")
    )
    assert r.code == 0, r.err
    assert "WARN    CRITICAL: Deleting namespace Namespace/legacy" in r.err
    assert ("sync_workflow", "wf") in api.calls


def test_seed_06_advanced_sync_policy(tmp_path: Path) -> None:
    api = FakeGitops()
    r = run(tmp_path, SEED / "06_advanced_sync_policy.lua", api=api)
    assert r.code == 0, r.err
    policy = api.workflows["workflow-1"]["sync_policy"]
    assert policy["pre_sync_hooks"] == ["kubectl cluster-info", "helm repo update"]
    syncs = [c[1] for c in api.calls if c[0] == "sync_workflow"]
    assert syncs == ["workflow-4", "workflow-3", "workflow-2"]  # database, backend, frontend


def test_seed_07_ai_integration(tmp_path: Path, store: Store) -> None:
    api = FakeGitops(store=store)
    api.register_repository({"id": "r"})
    api.create_workflow({"id": "gitops-wf", "repository": "r"})
    for _ in range(3):
        store.record_execution("ai_gitops_deploy", "kubectl apply -f manifests/", False, 30.0, "quota exceeded", {})
    r = run(tmp_path, SEED / "07_ai_integration.lua", api=api, params={"gitops_workflow_id": "gitops-wf"})
    assert r.code == 0, r.err
    assert re.search(r"WARN  AI detected high deployment risk: \d+\.\d%", r.err)
    assert "AI Recommendation: recent failure (3x in the last 3 runs" in r.err
    rows = store.executions("ai_gitops_deploy")
    assert len(rows) == 4 and rows[0]["success"] == 1 and rows[0]["duration"] == 30.0


def test_seed_08_alone_explains_its_missing_tasks(tmp_path: Path) -> None:
    r = run(tmp_path, SEED / "08_dsl_pipeline.lua")
    assert r.code == 1
    assert "workflow gitops_pipeline" in r.err and "its tasks list is empty" in r.err
