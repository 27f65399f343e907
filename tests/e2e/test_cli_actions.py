"""`slipway action list|run` as a user runs them, and the action in `slipway history -o json`."""

from __future__ import annotations

import json

import pytest

from tests.manifests import deployment, dump

from .conftest import Cli
from .test_cli import setup_workflow

pytestmark = pytest.mark.cluster


def test_action_list_and_run_from_the_command_line(cli: Cli, namespace: str) -> None:
    setup_workflow(cli, namespace, {"k8s/app.yaml": dump(deployment("web", 1))})
    assert cli("sync", "app-wf", "--yes").returncode == 0

    listed = cli("action", "list", "app-wf", "Deployment/web", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert [a["name"] for a in json.loads(listed.stdout)["actions"]] == ["pause", "restart", "resume", "scale"]
    assert "resume (disabled)" in cli("action", "list", "app-wf", "Deployment/web").stdout

    # Without a terminal it needs --yes: nothing runs, and it says why.
    refused = cli("action", "run", "app-wf", "Deployment/web", "restart")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    bad = cli("action", "run", "app-wf", "Deployment/web", "scale", "--param", "replicas", "--yes")
    assert bad.returncode == 2 and "KEY=VALUE" in bad.stderr
    foreign = cli("action", "run", "app-wf", "Deployment/nobody", "restart", "--yes")
    assert foreign.returncode == 2 and "does not own Deployment/nobody" in foreign.stderr

    ran = cli("action", "run", "app-wf", "Deployment/web", "scale", "--param", "replicas=2", "--yes")
    assert ran.returncode == 0, ran.stderr
    assert "succeeded" in ran.stdout and "scale Deployment/web" in ran.stdout
    ran = cli("action", "run", "app-wf", "Deployment/web", "restart", "--yes", "-o", "json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["status"] == "succeeded"

    # A customization of the kind replaces the built-ins; a directory that is not one is refused.
    custom = cli.cwd / "custom" / "apps" / "Deployment" / "actions"
    (custom / "hello").mkdir(parents=True)
    (custom / "discovery.lua").write_text("return {hello = {}}")
    (custom / "hello" / "action.lua").write_text('obj.metadata.labels["hello"] = "yes"; return obj')
    mine = cli("action", "--customizations", str(cli.cwd / "custom"), "list", "app-wf", "Deployment/web", "-o", "json")
    assert [a["name"] for a in json.loads(mine.stdout)["actions"]] == ["hello"], mine.stderr
    nowhere = cli("action", "--customizations", str(cli.cwd / "nowhere"), "list", "app-wf", "Deployment/web")
    assert nowhere.returncode == 2 and "not a directory" in nowhere.stderr

    history = json.loads(cli("history", "app-wf", "-o", "json").stdout)
    actions = [h for h in history if h["kind"] == "action"]
    assert [h["message"].split()[0] for h in actions] == ["restart", "scale"]
    assert all(h["actor"] and h["actor"].startswith("user:") for h in actions)
    assert actions[1]["changes"][0]["params"] == {"replicas": "2"}
