"""The command line's conventions: views of a plan, output formats anywhere, errors as JSON, closed
pipes, progress without a terminal, workflow list's revisions, and diffs of what has not merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.gitservers import commit, git, push

from .conftest import Cli
from .test_cli import cm, setup_workflow

pytestmark = pytest.mark.cluster


def many(namespace: str, n: int, value: str = "1", size: int = 0) -> str:
    return yaml.safe_dump_all([cm(f"c{i:02d}", namespace, v=value, pad="x" * size) for i in range(n)])


def test_a_large_plan_prints_a_table_and_the_views_narrow_or_widen_it(cli: Cli, namespace: str) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": many(namespace, 25)})
    r = cli("diff", "app-wf")
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("app-wf at revision ") and "25 change(s) (+25 ~0 -0)" in lines[0]
    header = next(line for line in lines if line.startswith("ACTION"))
    assert header.split() == ["ACTION", "KIND", "NAME", "NAMESPACE", "IMPACT", "WAVE"]
    assert f"create  ConfigMap  c07   {namespace}" in r.stdout
    assert "+ Creating" not in r.stdout and "25 created or deleted object(s) not shown in full" in r.stdout

    full = cli("diff", "app-wf", "--diff")
    assert full.returncode == 1 and full.stdout.count("+ Creating ConfigMap/") == 25
    one = cli("diff", "app-wf", "--resource", "configmap/c03")
    assert one.returncode == 1 and one.stdout.count("+ Creating ConfigMap/") == 1 and "ConfigMap/c03" in one.stdout
    summary = cli("diff", "app-wf", "--summary")
    assert summary.returncode == 1 and "+ Creating" not in summary.stdout and "ACTION" in summary.stdout
    assert "API VERSION" in cli("diff", "app-wf", "-o", "wide").stdout

    assert cli("sync", "app-wf", "--yes").returncode == 0
    commit(work, {"k8s/a.yaml": many(namespace, 25, value="2")})
    push(work)
    updated = cli("diff", "app-wf")
    assert updated.returncode == 1 and updated.stdout.count("~ Updating ConfigMap/") == 25
    assert "data.v: '1' -> '2'" in updated.stdout or "data.v: 1 -> 2" in updated.stdout
    unchanged = cli("diff", "app-wf", "--resource", "ConfigMap/nope")
    assert unchanged.returncode == 0 and "ConfigMap/nope: no change" in unchanged.stdout


def test_formats_after_the_command_errors_as_json_version_and_closed_pipes(cli: Cli, namespace: str) -> None:
    setup_workflow(cli, namespace, {"k8s/a.yaml": many(namespace, 30, size=3000)})
    as_json = cli("diff", "app-wf", "-o", "json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["summary"]["created_resources"] == 30
    as_yaml = cli("diff", "app-wf", "--output", "yaml")
    assert yaml.safe_load(as_yaml.stdout)["summary"]["created_resources"] == 30
    assert json.loads(cli("workflow", "list", "-o", "json").stdout)[0]["id"] == "app-wf"

    for args in (("diff", "nope", "-o", "json"), ("-o", "json", "sync", "nope", "--yes"), ("diff", "-o", "json")):
        r = cli(*args)
        assert r.returncode == 2 and r.stdout == ""
        (line,) = r.stderr.strip().splitlines()
        error = json.loads(line)
        assert error["exit_code"] == 2 and error["error"], error
    assert "workflow 'nope' does not exist" in cli("diff", "nope", "-o", "json").stderr

    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("slipway ")

    # A reader that stops early (| head) changes nothing: diff still exits 1 (changes pending), quietly.
    shell = f"{sys.executable} -m slipway diff app-wf --diff | head -1; echo exit=${{PIPESTATUS[0]}}"
    r = subprocess.run(["bash", "-c", shell], env=cli.env, cwd=cli.cwd, capture_output=True, text=True, timeout=120)
    assert r.stdout.splitlines()[0].startswith("app-wf at revision") and "exit=1" in r.stdout, r.stderr
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr and "Exception ignored" not in r.stderr


def test_without_a_terminal_a_sync_reports_each_step_and_names_what_is_not_healthy(cli: Cli, namespace: str) -> None:
    never = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stuck"}},
                 "template": {"metadata": {"labels": {"app": "stuck"}},
                              "spec": {"nodeSelector": {"no-such-node": "x"},
                                       "containers": [{"name": "a", "image": "registry.invalid/a:1"}]}}},
    }  # fmt: skip
    docs = yaml.safe_dump_all([cm("a", namespace, k="v"), never])
    setup_workflow(cli, namespace, {"k8s/a.yaml": docs}, "--health-timeout", "12s")
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 1, r.stderr
    for step in ("fetch...", "render...", "plan...", "apply...", "applied 2 of 2", "health..."):
        assert step in r.stderr, (step, r.stderr)
    waiting = [line for line in r.stderr.splitlines() if "health: " in line and "not yet:" in line and "stuck" in line]
    assert len(waiting) >= 3, r.stderr  # a line every few seconds, never a silent wait
    assert "ACTION" in r.stdout and "sync sync-" in r.stdout  # the plan, then the result, on stdout


def test_workflow_list_shows_what_is_live_against_the_branch_head(cli: Cli, namespace: str) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": many(namespace, 1)})
    before = cli("workflow", "list")
    assert before.returncode == 0 and "active" in before.stdout and "behind Git" not in before.stdout
    assert cli("sync", "app-wf", "--yes").returncode == 0
    head = git("rev-parse", "HEAD", cwd=work)
    (row,) = json.loads(cli("-o", "json", "workflow", "list").stdout)
    assert row["live_revision"] == row["branch_head"] == head and row["out_of_date"] is False
    assert row["path"] == "k8s" and row["namespace"] == namespace
    commit(work, {"k8s/a.yaml": many(namespace, 1, value="2")})
    push(work)
    text = cli("workflow", "list")
    assert "synced, behind Git" in text.stdout and head[:7] in text.stdout, text.stdout
    offline = cli("workflow", "list", "--no-remote")
    assert offline.returncode == 0 and "behind Git" not in offline.stdout


def test_diff_of_a_local_directory_and_of_another_branch(cli: Cli, namespace: str) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("a", namespace, v="1"))})
    assert cli("sync", "app-wf", "--yes").returncode == 0
    history = cli("-o", "json", "history", "app-wf").stdout

    # A pull request's change, in a work tree: planned against the live object, nothing recorded.
    (work / "k8s" / "a.yaml").write_text(yaml.safe_dump(cm("a", namespace, v="2")))
    (work / "k8s" / "b.yaml").write_text(yaml.safe_dump(cm("b", namespace, v="1")))
    r = cli("diff", "app-wf", "--local", str(work / "k8s"))
    assert r.returncode == 1 and "from a local directory" in r.stdout, r.stderr
    assert "~ Updating ConfigMap/a" in r.stdout and "+ Creating ConfigMap/b" in r.stdout
    assert cli("-o", "json", "history", "app-wf").stdout == history

    outside = cli.cwd / "secret.yaml"
    outside.write_text(yaml.safe_dump(cm("leak", namespace, v="1")))
    os.symlink(outside, work / "k8s" / "link.yaml")
    refused = cli("diff", "app-wf", "--local", str(work / "k8s"))
    assert refused.returncode == 2 and "link.yaml is a symbolic link" in refused.stderr and "outside" in refused.stderr
    os.unlink(work / "k8s" / "link.yaml")
    os.symlink("a.yaml", work / "k8s" / "inside.yaml.txt")  # a link inside the directory is kept
    assert cli("diff", "app-wf", "--local", str(work / "k8s")).returncode == 1

    # Another branch, as a pull request check plans it before the merge.
    git("checkout", "-q", "-b", "feature", cwd=work)
    commit(work, {"k8s/c.yaml": yaml.safe_dump(cm("c", namespace, v="1")), "k8s/inside.yaml.txt": None})
    push(work, "feature")
    r = cli("diff", "app-wf", "--revision", "feature", "--summary")
    assert r.returncode == 1 and "create  ConfigMap  c " in r.stdout and "update  ConfigMap  a " in r.stdout, r.stdout
    assert cli("diff", "app-wf").returncode == 0  # the tracked branch did not move
    missing = cli("diff", "app-wf", "--revision", "no-such-branch")
    assert missing.returncode == 2 and "no branch, tag or commit 'no-such-branch'" in missing.stderr


def test_on_a_terminal_sync_asks_then_draws_a_progress_bar(cli: Cli, namespace: str) -> None:
    import pty
    import select
    import time

    setup_workflow(cli, namespace, {"k8s/a.yaml": many(namespace, 3)}, "--no-health")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "slipway", "sync", "app-wf"], env={**cli.env, "NO_COLOR": "1"},
                            cwd=cli.cwd, stdin=secondary, stdout=secondary, stderr=secondary)  # fmt: skip
    os.close(secondary)
    seen, answered = b"", False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the command ended and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"Apply these changes?" in seen:
            os.write(primary, b"y\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(primary)
    assert proc.wait(30) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert answered and "ACTION" in text
    assert "\r\x1b[K[" in text and "3/3 applied" in text  # the bar, redrawn in place
    assert "sync sync-" in text and "succeeded" in text


def test_ignore_differences_from_the_command_line(cli: Cli, namespace: str) -> None:
    setup_workflow(cli, namespace, {"k8s/a.yaml": many(namespace, 1)})
    rule = {"group": "apps", "kind": "Deployment", "json_pointers": ["/spec/replicas"]}
    r = cli("workflow", "set", "app-wf", "--ignore-difference", json.dumps(rule))
    assert r.returncode == 0 and "sync_policy.ignore_differences" in r.stdout, r.stderr
    shown = json.loads(cli("workflow", "show", "app-wf", "-o", "json").stdout)
    assert shown["sync_policy"]["ignore_differences"][0]["json_pointers"] == ["/spec/replicas"]

    rules = cli.cwd / "ignore.yaml"
    rules.write_text(yaml.safe_dump([{"kind": "*", "managed_fields_managers": ["hpa"]}]))
    assert cli("workflow", "set", "app-wf", "--ignore-differences-file", str(rules)).returncode == 0
    shown = json.loads(cli("-o", "json", "workflow", "show", "app-wf").stdout)
    assert [r["managed_fields_managers"] for r in shown["sync_policy"]["ignore_differences"]] == [["hpa"]]

    bad = cli(
        "workflow", "set", "app-wf", "--ignore-difference", '{"kind": "Deployment", "jq_path_expressions": [".x"]}'
    )
    assert bad.returncode == 2 and "jq expressions are not supported" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    broken = cli("workflow", "set", "app-wf", "--ignore-difference", "{kind: Deployment")
    assert broken.returncode == 2 and "--ignore-difference #1: invalid JSON" in broken.stderr
    rules.write_text("[]\n")
    assert cli("workflow", "set", "app-wf", "--ignore-differences-file", str(rules)).returncode == 0
    assert json.loads(cli("-o", "json", "workflow", "show", "app-wf").stdout)["sync_policy"]["ignore_differences"] == []
