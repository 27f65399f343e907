"""``slipway workflow get``, ``workflow status`` and ``workflow list`` in every output format, and
the diff's ways of naming what to plan (``--revision HEAD~1``) and of showing a create."""

from __future__ import annotations

import json

import pytest
import yaml

from slipway.kube import Kube
from tests.gitservers import commit, git, push

from .conftest import Cli
from .test_cli import cm, setup_workflow

pytestmark = pytest.mark.cluster


def svc(name: str, namespace: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}  # fmt: skip


def test_workflow_get_shows_each_object_in_every_format(cli: Cli, namespace: str, kube: Kube) -> None:
    setup_workflow(
        cli, namespace, {"k8s/a.yaml": yaml.safe_dump_all([cm("a", namespace, v="1"), svc("web", namespace)])}
    )
    before = json.loads(cli("workflow", "get", "app-wf", "-o", "json").stdout)
    assert (
        before["workflow"]["sync_status"]["status"] == "OutOfSync" and before["workflow"]["sync_status"]["created"] == 2
    )
    assert before["workflow"]["operation"] is None and before["hooks"] == []
    assert cli("sync", "app-wf", "--yes").returncode == 0

    kube.delete(kube.discovery.lookup("v1", "ConfigMap"), namespace, "a")
    as_json = json.loads(cli("workflow", "get", "app-wf", "-o", "json").stdout)
    assert set(as_json) == {"workflow", "objects", "hooks"}
    assert {"sync_status", "health", "operation"} <= set(as_json["workflow"])
    objects = {(o["kind"], o["name"]): o for o in as_json["objects"]}
    assert set(objects) == {("ConfigMap", "a"), ("Service", "web")}
    assert set(objects["ConfigMap", "a"]) == {"group", "kind", "namespace", "name", "sync_status", "health"}
    assert (objects["ConfigMap", "a"]["sync_status"], objects["ConfigMap", "a"]["health"]["status"]) == (
        "Missing",
        "Missing",
    )
    assert objects["Service", "web"]["sync_status"] == "Synced" and objects["Service", "web"]["namespace"] == namespace
    as_yaml = yaml.safe_load(cli("workflow", "get", "app-wf", "-o", "yaml").stdout)
    assert as_yaml["workflow"]["sync_status"] == as_json["workflow"]["sync_status"]
    text = cli("workflow", "get", "app-wf")
    assert text.returncode == 0, text.stderr
    assert "sync status: OutOfSync (1 missing)" in text.stdout and "health:      Missing" in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.split()[:2] == ["-", "ConfigMap"])
    assert row.split()[4:6] == ["Missing", "Missing"], text.stdout
    assert "operation:   sync sync-" in text.stdout and "Succeeded" in text.stdout

    status = cli("workflow", "status", "app-wf")
    assert "sync status: OutOfSync (1 missing)" in status.stdout, status.stdout
    assert yaml.safe_load(cli("workflow", "status", "app-wf", "-o", "yaml").stdout)["health"]["status"] == "Missing"

    listed = cli("workflow", "list", "--no-remote")
    header, line = listed.stdout.splitlines()[:2]
    assert header.split()[5:8] == ["SYNC", "HEALTH", "AGE"]
    assert "OutOfSync (1 missing)" in line and "Missing" in line
    (row_json,) = json.loads(cli("workflow", "list", "--no-remote", "-o", "json").stdout)
    assert row_json["sync_status"]["missing"] == 1 and row_json["assessed_age"] is not None
    (row_yaml,) = yaml.safe_load(cli("workflow", "list", "--no-remote", "-o", "yaml").stdout)
    assert row_yaml["health"]["status"] == "Missing"
    assert cli("sync", "app-wf", "--yes").returncode == 0
    (fresh,) = json.loads(cli("workflow", "list", "--no-remote", "--live", "-o", "json").stdout)
    assert (fresh["sync_status"]["status"], fresh["health"]["status"]) == ("Synced", "Healthy")
    assert "Synced" in cli("workflow", "list", "--live", "-o", "wide").stdout


def test_a_create_diff_shows_what_git_declares_and_revision_takes_ancestors(cli: Cli, namespace: str) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("a", namespace, v="1"))})
    first = git("rev-parse", "HEAD", cwd=work)
    commit(work, {"k8s/a.yaml": yaml.safe_dump_all([cm("a", namespace, v="2"), svc("web", namespace)])})
    push(work)
    r = cli("diff", "app-wf", "--diff")
    assert r.returncode == 1, r.stderr
    assert "Creating Service/web" in r.stdout and "clusterIP" not in r.stdout, r.stdout  # the server's, not Git's
    back = cli("diff", "app-wf", "--revision", "HEAD~1")
    assert back.returncode == 1, back.stderr
    assert first[:7] in back.stdout.splitlines()[0], back.stdout
    plan = json.loads(cli("-o", "json", "diff", "app-wf", "--revision", "HEAD~1").stdout)
    assert [c["resource"] for c in plan["changes"]] == ["ConfigMap/a"]
    assert cli("diff", "app-wf", "--revision", "main^").returncode == 1
    far = cli("diff", "app-wf", "--revision", "HEAD~5")
    assert far.returncode == 2 and "has no such ancestor" in far.stderr, far.stderr


def stuck(namespace: str) -> dict[str, object]:
    """A Deployment nothing can schedule: applied at once, Progressing for as long as one waits."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "stuck", "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stuck"}},
                 "template": {"metadata": {"labels": {"app": "stuck"}},
                              "spec": {"nodeSelector": {"no-such-node": "x"},
                                       "containers": [{"name": "a", "image": "registry.invalid/a:1"}]}}},
    }  # fmt: skip


def test_a_sync_applied_in_full_and_still_progressing(cli: Cli, namespace: str) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump_all([cm("a", namespace, v="1"), stuck(namespace)])},
                          "--health-timeout", "4s")  # fmt: skip
    head = git("rev-parse", "HEAD", cwd=work)
    # Waiting (the default): not healthy in time, so failed as failure_mode "fail" says; yet every
    # object was applied, so the revision is live and the sync status says Synced.
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Deployment/stuck" in r.stderr  # what it waited for, by name
    assert "sync status: Synced; health: Progressing (Deployment/" in r.stdout, r.stdout
    (row,) = json.loads(cli("-o", "json", "workflow", "list", "--no-remote").stdout)
    assert row["live_revision"] == head, row
    assert (row["sync_status"]["status"], row["health"]["status"]) == ("Synced", "Progressing")
    assert row["operation"]["phase"] == "Failed" and "health" in row["operation"]["message"]

    # --no-wait: recorded once applied, health as it is then; exit 0.
    commit(work, {"k8s/a.yaml": yaml.safe_dump_all([cm("a", namespace, v="2"), stuck(namespace)])})
    push(work)
    r = cli("sync", "app-wf", "--yes", "--no-wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "health not awaited (--no-wait)" in r.stdout and "health: Progressing" in r.stdout, r.stdout
    st = json.loads(cli("-o", "json", "workflow", "status", "app-wf").stdout)
    assert (st["sync_status"]["status"], st["health"]["status"]) == ("Synced", "Progressing"), st
    assert st["operation"]["phase"] == "Succeeded"

    # failure_mode "ignore": waited for, not healthy, and still a success.
    assert cli("workflow", "set", "app-wf", "--failure-mode", "ignore").returncode == 0
    commit(work, {"k8s/a.yaml": yaml.safe_dump_all([cm("a", namespace, v="3"), stuck(namespace)])})
    push(work)
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 0 and "ignored: failure_mode is ignore" in r.stdout, r.stdout + r.stderr
