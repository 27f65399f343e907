"""The CLI on the edges users hit: Jobs, schema errors, changing and removing workflows, failures on record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.kube import Kube
from tests.gitservers import commit, free_port, push

from .conftest import Cli
from .test_cli import cm, setup_workflow

pytestmark = pytest.mark.cluster


def job(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
                                       "containers": [{"name": "m", "image": "registry.invalid/m:1"}]}}},
    }  # fmt: skip


def test_sync_creates_a_job_and_a_service(cli: Cli, kube: Kube, namespace: str) -> None:
    # The dry-run gives every new Job a fresh random controller-uid and every Service a clusterIP:
    # the plan a person approves must not change because of that.
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}  # fmt: skip
    setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump_all([job("migrate", namespace), svc])})
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plan changed" not in r.stdout + r.stderr
    assert kube.get(kube.discovery.lookup("batch/v1", "Job"), namespace, "migrate") is not None


def test_a_schema_error_is_a_validation_conflict_at_once(cli: Cli, namespace: str) -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"replicas": "three", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "a", "image": "x"}]}}},
    }  # fmt: skip
    setup_workflow(cli, namespace, {"k8s/web.yaml": yaml.safe_dump(cm("ok", namespace, a="1")) + "---\n"
                                    + yaml.safe_dump(dep)})  # fmt: skip
    diff = cli("-o", "json", "diff", "app-wf")
    assert diff.returncode == 1, diff.stderr  # the plan was computed: it has a conflict
    plan = json.loads(diff.stdout)
    (conflict,) = plan["conflicts"]
    assert conflict["type"] == "validation" and conflict["resource"] == "Deployment/web"
    assert conflict["description"].startswith("k8s/web.yaml, document 2:")
    assert "retry" not in diff.stderr  # permanent: never retried as if the server were failing

    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 2 and "nothing was applied" in r.stdout + r.stderr
    history = json.loads(cli("-o", "json", "history", "app-wf").stdout)
    assert history[0]["status"] == "failed" and history[0]["metrics"]["resources_applied"] == 0


def test_create_refuses_an_existing_id_set_changes_only_what_is_given_and_show_shows_all(
    cli: Cli, namespace: str
) -> None:
    setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("a", namespace, v="1"))}, "--prune")
    again = cli("workflow", "create", "--id", "app-wf", "--repository", "app", "--auto-sync")
    assert again.returncode == 2 and "already exists" in again.stderr and "workflow set app-wf" in again.stderr
    shown = json.loads(cli("-o", "json", "workflow", "show", "app-wf").stdout)
    assert shown["target_path"] == "k8s" and shown["destination"]["namespace"] == namespace
    assert shown["auto_sync"] is False and shown["sync_policy"]["auto_prune"] is True

    r = cli("workflow", "set", "app-wf", "--auto-sync", "--health-timeout", "90s")
    assert r.returncode == 0, r.stderr
    assert "auto_sync: false -> true" in r.stdout and 'sync_policy.health_check.timeout: "5m" -> "90s"' in r.stdout
    after = json.loads(cli("-o", "json", "workflow", "show", "app-wf").stdout)
    assert after["auto_sync"] is True and after["sync_policy"]["health_check"]["timeout"] == "90s"
    # Everything not given is as it was: the path, the namespace, prune.
    assert {k: v for k, v in after.items() if k not in ("auto_sync", "sync_policy")} == {
        k: v for k, v in shown.items() if k not in ("auto_sync", "sync_policy")
    }
    assert after["sync_policy"]["auto_prune"] is True
    text = cli("workflow", "show", "app-wf").stdout
    assert f'destination.namespace: "{namespace}"' in text
    bad = cli("workflow", "set", "app-wf", "--history-limit", "0")
    assert bad.returncode == 2 and "history_limit" in bad.stderr
    assert cli("workflow", "set", "app-wf").returncode == 2  # nothing to change


def test_remove_keeps_the_history_and_cascade_deletes_only_what_the_workflow_owns(
    cli: Cli, kube: Kube, namespace: str
) -> None:
    setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump_all([cm("a", namespace), cm("b", namespace)])})
    assert cli("sync", "app-wf", "--yes").returncode == 0
    cms = kube.discovery.lookup("v1", "ConfigMap")
    labels = kube.get(cms, namespace, "a")["metadata"]["labels"]  # type: ignore[index]
    kube.apply(cms, {**cm("by-hand", namespace), "metadata": {"name": "by-hand", "namespace": namespace,
                                                               "labels": labels}}, field_manager="kubectl")  # fmt: skip

    no_tty = cli("workflow", "remove", "app-wf", "--cascade")
    assert no_tty.returncode == 1 and "--yes" in no_tty.stderr
    assert "ConfigMap/a" in no_tty.stdout and "by-hand" not in no_tty.stdout  # it shows what it would delete
    r = cli("workflow", "remove", "app-wf", "--cascade", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    assert kube.get(cms, namespace, "a") is None and kube.get(cms, namespace, "b") is None
    assert kube.get(cms, namespace, "by-hand") is not None
    assert cli("workflow", "status", "app-wf").returncode == 2
    history = json.loads(cli("-o", "json", "history", "app-wf").stdout)
    assert [h["trigger"] for h in history] == ["remove", "manual"]
    assert history[0]["metrics"]["resources_deleted"] == 2


def test_a_sync_that_fails_before_it_starts_is_on_the_record(cli: Cli, namespace: str, tmp_path: Path) -> None:
    work = setup_workflow(cli, namespace, {"k8s/a.yaml": yaml.safe_dump(cm("a", namespace))})
    assert cli("sync", "app-wf", "--yes").returncode == 0
    # The API server is unreachable: a kubeconfig pointing at a port nothing listens on.
    config = yaml.safe_load(Path(cli.env["KUBECONFIG"]).read_text())
    for c in config["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
        c["cluster"].pop("certificate-authority", None)
        c["cluster"]["insecure-skip-tls-verify"] = True
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    assert cli("workflow", "set", "app-wf", "--kubeconfig", str(dead), "--retry-limit", "0").returncode == 0
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 2 and "cannot reach API server" in r.stderr
    history = json.loads(cli("-o", "json", "history", "app-wf").stdout)
    assert history[0]["status"] == "failed" and "cannot reach API server" in history[0]["message"]
    assert json.loads(cli("-o", "json", "workflow", "status", "app-wf").stdout)["status"] == "failed"

    # The branch deleted on the server: on the record too.
    assert cli("workflow", "set", "app-wf", "--kubeconfig", cli.env["KUBECONFIG"]).returncode == 0
    commit(work, {"k8s/b.yaml": yaml.safe_dump(cm("b", namespace))})
    push(work)
    from tests.gitservers import git, origin_of

    git("--git-dir", str(origin_of(work)), "branch", "-m", "main", "gone")
    r = cli("sync", "app-wf", "--yes")
    assert r.returncode == 2 and 'branch "main" does not exist' in r.stderr
    assert json.loads(cli("-o", "json", "history", "app-wf").stdout)[0]["status"] == "failed"
