"""The `slipway` command as a user runs it: repo, workflow, diff, sync, rollback, history, errors."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml

from slipway.kube import Kube
from tests.gitservers import make_repo, origin_of

from .conftest import BOTH_BACKENDS, Cli

pytestmark = pytest.mark.cluster


def cm(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


def setup_workflow(cli: Cli, namespace: str, files: dict[str, Any], *extra: str) -> Any:
    work = make_repo(cli.cwd / "app", files)
    r = cli("repo", "add", str(origin_of(work)), "--id", "app")
    assert r.returncode == 0, r.stderr
    r = cli(
        "workflow", "create", "--id", "app-wf", "--repository", "app", "--path", "k8s", "--namespace", namespace, *extra
    )
    assert r.returncode == 0, r.stderr
    return work


def test_repo_commands_and_secrets_stay_out_of_argv_and_output(cli: Cli) -> None:
    token = "tok-" + os.urandom(8).hex()
    env_cli = Cli({**cli.env, "DEPLOY_TOKEN": token}, cli.home, cli.cwd)
    r = env_cli(
        "repo", "add", "https://git.example.com/k8s.git", "--id", "k8s", "--token-env", "DEPLOY_TOKEN", "--no-check"
    )
    assert r.returncode == 0, r.stderr
    listed = json.loads(cli("-o", "json", "repo", "list").stdout)
    assert listed == [{"id": "k8s", "type": "git", "url": "https://git.example.com/k8s.git", "branch": "main", "poll_interval": "30s",
                       "credentials": {"type": "token", "username": "x-access-token"}}]  # fmt: skip
    shown = cli("repo", "show", "k8s")
    assert "x-access-token" in shown.stdout
    for out in (r.stdout + r.stderr, json.dumps(listed), shown.stdout):
        assert token not in out
    assert token.encode() not in b"".join(p.read_bytes() for p in cli.home.glob("state.db*"))
    missing = cli("repo", "add", "https://h/x", "--token-env", "NOT_SET_ANYWHERE")
    assert missing.returncode == 2 and "NOT_SET_ANYWHERE is not set" in missing.stderr
    assert cli("repo", "remove", "k8s").returncode == 0
    assert json.loads(cli("-o", "json", "repo", "list").stdout) == []


@BOTH_BACKENDS
def test_user_mistakes_are_one_line_without_a_traceback(cli: Cli) -> None:
    cases = [
        (("workflow", "create", "--repository", "nope"), "repository 'nope' is not registered"),
        (("repo", "add", "https://h/x", "--poll-interval", "soon"), "poll_interval: 'soon' is not a duration"),
        (("diff", "no-such-workflow"), "workflow 'no-such-workflow' does not exist"),
        (("sync", "no-such-workflow", "--yes"), "workflow 'no-such-workflow' does not exist"),
        (("rollback", "no-such-workflow", "--reason", "x"), "workflow 'no-such-workflow' does not exist"),
        (("workflow", "status", "nope"), "workflow 'nope' does not exist"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    debug = cli("--debug", "diff", "no-such-workflow")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


@BOTH_BACKENDS
def test_diff_exit_codes_sync_history_and_rollback(cli: Cli, kube: Kube, namespace: str) -> None:
    work = setup_workflow(
        cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("settings", namespace, mode="one"))}, "--prune"
    )
    r = cli("diff", "app-wf")
    assert r.returncode == 1, r.stderr  # changes pending
    assert "+ Creating ConfigMap/settings" in r.stdout and "1 change(s)" in r.stdout

    as_json = cli("-o", "json", "diff", "app-wf")
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert set(doc) == {"workflow_id", "generated_at", "summary", "changes", "conflicts", "warnings", "hooks"}

    r = cli("sync", "app-wf")  # no terminal: it does not ask
    assert r.returncode == 0, r.stderr
    assert "sync sync-" in r.stdout and "succeeded" in r.stdout
    assert cli("diff", "app-wf").returncode == 0  # nothing left to change

    from tests.gitservers import commit, push

    commit(work, {"k8s/a.yaml": yaml.safe_dump(cm("settings", namespace, mode="two"))}, "Switch the mode to two")
    push(work)
    r = cli("diff", "app-wf")
    assert r.returncode == 1 and "data.mode: one -> two" in r.stdout
    r = cli("-o", "json", "sync", "app-wf", "--yes")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["status"] == "succeeded" and result["metrics"]["resources_applied"] == 1

    r = cli("rollback", "app-wf", "--reason", "mode two broke checkout")
    assert r.returncode == 0, r.stderr
    cms = kube.discovery.lookup("v1", "ConfigMap")
    assert (kube.get(cms, namespace, "settings") or {})["data"]["mode"] == "one"

    history = json.loads(cli("-o", "json", "history", "app-wf").stdout)
    assert [h["kind"] for h in history] == ["rollback", "sync", "sync"]
    assert history[0]["reason"] == "mode two broke checkout"
    assert history[0]["from_revision"] == history[1]["commit_hash"]
    assert history[0]["commit_hash"] == history[2]["commit_hash"]
    # The commit each one deployed, as Git has it (a rollback: the commit it returned to).
    assert history[1]["commit_message"] == "Switch the mode to two"
    assert history[1]["commit_author"] == "slipway tests <tests@slipway.invalid>"
    assert history[0]["commit_message"] == history[2]["commit_message"] == "initial"
    assert (
        yaml.safe_load(cli("-o", "yaml", "history", "app-wf").stdout)[1]["commit_message"] == "Switch the mode to two"
    )
    text = cli("history", "app-wf").stdout
    assert "rollback" in text and "(rolled back)" in text
    assert "Switch" in text and "initial" in text  # the subjects (the table wraps them to its width)

    status = json.loads(cli("-o", "json", "workflow", "status", "app-wf").stdout)
    assert set(status) >= {"id", "name", "status", "auto_sync", "repository", "last_sync_result"}  # the seed's
    assert {"sync_status", "health", "operation"} <= set(status)  # and the two axes, with the last operation
    # The last sync is the rolled-back one; the text says what actually runs.
    text = cli("workflow", "status", "app-wf").stdout
    assert f"rolled back: live at revision {history[2]['commit_hash'][:12]}" in text
    assert f"until a commit after {history[1]['commit_hash'][:12]}" in text
    listed = json.loads(cli("-o", "json", "workflow", "list").stdout)
    assert [w["id"] for w in listed] == ["app-wf"]
    assert cli("repo", "remove", "app").returncode == 2  # still used by a workflow
    assert cli("workflow", "remove", "app-wf").returncode == 0


@BOTH_BACKENDS
def test_a_failing_sync_exits_1(cli: Cli, namespace: str) -> None:
    setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("x", namespace, k="v"))}, "--pre-hook", "exit 7")
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 1
    assert "failed" in r.stdout and "exited with 7" in r.stdout


def test_cluster_status_and_kubeconfig(cli: Cli, cluster: Any) -> None:
    r = cli("cluster", "status")
    assert r.returncode == 0 and "running at https://127.0.0.1:" in r.stdout
    assert "kube-apiserver" in r.stdout and ".log" in r.stdout
    assert cli("cluster", "kubeconfig").stdout.strip() == str(cluster.kubeconfig)
    st = json.loads(cli("-o", "json", "cluster", "status").stdout)
    assert st["running"] is True and {p["name"] for p in st["processes"]} >= {"etcd", "kube-apiserver", "kwok"}


@BOTH_BACKENDS
def test_ctrl_c_cancels_a_sync_at_a_safe_point_and_records_it(cli: Cli, namespace: str) -> None:
    import signal
    import subprocess
    import sys
    import time

    marker = cli.cwd / "hook-started"
    setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("x", namespace, k="v"))},
                   "--post-hook", f"touch {marker}; sleep 30")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "slipway", "sync", "app-wf", "--yes"], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "cancelling at the next safe point" in err
    (last,) = cli.engine().history("app-wf")
    assert last.status == "failed" and "cancelled" in last.message
    assert cli.engine().store.workflow_state("app-wf")["sync_owner"] is None
