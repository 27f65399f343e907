"""Every seed example runs as written with `slipway run`, against the local cluster and a local Git server.

The examples' repository URLs (https://github.com/company/...) reach the local server through
Git's own ``url.<base>.insteadOf``; the files themselves are not modified.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.kube import Kube
from tests.manifests import configmap, deployment

from .conftest import SEED, Cli, Company, manifests

pytestmark = pytest.mark.cluster


def cm(name: str, **data: str) -> dict[str, Any]:
    return configmap(name, data or None)


def deploy(name: str, replicas: int) -> dict[str, Any]:
    return deployment(name, replicas)


def seed(*names: str) -> list[str]:
    return [str(SEED / n) for n in names]


def test_01_quick_setup(cli: Cli, company: Company) -> None:
    company.create("infrastructure", {"app.yaml": ""})
    r = cli("run", *seed("01_quick_setup.lua"))
    assert r.returncode == 0, r.stderr
    assert " on repository repo-" in r.stderr and " is created" in r.stderr
    wf = cli.engine().workflows()[0]
    assert wf.auto_sync and wf.diff_preview and wf.rollback_on_failure
    assert cli.engine().repository(wf.repository).url == "https://github.com/company/infrastructure"


def test_02_repository_and_workflow(cli: Cli) -> None:
    r = cli("run", *seed("02_repository_and_workflow.lua"))
    assert r.returncode == 0, r.stderr
    assert "Production Infrastructure: active" in r.stderr
    assert "workflow production-workflow" in r.stderr
    eng = cli.engine()
    repo = eng.repository("production-repo")
    assert repo.credentials is not None and repo.credentials.type == "token"
    assert repo.poll_interval == "30s"
    wf = eng.workflow("production-workflow")
    assert wf.target_path == "k8s/production" and wf.sync_policy.retry.limit == 3
    assert wf.sync_policy.health_check.timeout == "10m"
    # The token is stored encrypted, never as text.
    assert b"ghp_xxxxxxxxxxxx" not in b"".join(p.read_bytes() for p in cli.home.glob("state.db*"))


def test_03_multi_environment_keeps_syncing_after_the_script_ends(
    cli: Cli, company: Company, kube: Kube, namespace: str
) -> None:
    company.create(
        "k8s-dev", {"manifests/app.yaml": manifests(namespace, cm("dev-config", env="development"))}, branch="develop"
    )
    company.create(
        "k8s-staging",
        {"manifests/app.yaml": manifests(namespace, cm("staging-config", env="staging"))},
        branch="staging",
    )
    company.create("k8s-prod", {"manifests/app.yaml": manifests(namespace, cm("prod-config", env="production"))})
    log = cli.cwd / "03.log"
    proc = cli.popen("run", *seed("03_multi_environment.lua"), log=log)
    cms = kube.discovery.lookup("v1", "ConfigMap")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if kube.get(cms, namespace, "dev-config") and kube.get(cms, namespace, "staging-config"):
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        else:
            raise AssertionError(log.read_text())
        text = log.read_text()
        for env in ("development", "staging", "production"):
            assert f"Created GitOps workflow for {env}: {env}-workflow" in text
        assert "keeps running" in text
        eng = cli.engine()
        deadline = time.monotonic() + 30
        while eng.status("staging-workflow")["status"] != "synced" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert eng.status("development-workflow")["status"] == "synced"
        assert eng.status("staging-workflow")["status"] == "synced"
        assert eng.status("production-workflow")["status"] == "active"  # auto_sync = false
        assert kube.get(cms, namespace, "prod-config") is None
        assert proc.poll() is None  # still running after its last line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


PROD_FILES = ["04_production_deploy.lua", "05_kubernetes_gitops.lua", "08_dsl_pipeline.lua"]


def test_04_05_08_pipeline_deploys_low_impact_changes(cli: Cli, company: Company, kube: Kube, namespace: str) -> None:
    company.create("k8s-prod", {"manifests/app.yaml": manifests(namespace, cm("settings", mode="a"), deploy("web", 1))})
    r = cli("run", *seed(*PROD_FILES), "--param", "workflow_id=production-workflow")
    assert r.returncode == 0, r.stderr
    err = r.stderr
    assert "Total changes: 2" in err and "Production deployment successful!" in err
    assert "Applied 2 resources" in err
    assert "GitOps pipeline completed successfully!" in err
    assert "Starting GitOps task: kubernetes_gitops_deploy" in err
    status = cli.engine().status("production-workflow")
    assert status["status"] == "synced" and status["last_sync_result"]["status"] == "succeeded"
    assert kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web") is not None


def test_04_05_08_high_impact_without_a_terminal_fails_the_task_with_file_and_line(
    cli: Cli, company: Company, kube: Kube, namespace: str
) -> None:
    company.create("k8s-prod", {"manifests/app.yaml": manifests(namespace, deploy("web", 2))})
    assert cli("run", *seed(*PROD_FILES), "--param", "workflow_id=production-workflow").returncode == 0
    company.commit("k8s-prod", {"manifests/app.yaml": manifests(namespace, deploy("web", 0))})  # scale to zero: high

    r = cli("run", *seed(*PROD_FILES), "--param", "workflow_id=production-workflow")  # stdin closed
    assert r.returncode == 1
    assert "High-impact: Deployment/web (update)" in r.stderr
    assert "04_production_deploy.lua:69:" in r.stderr and "attempt to index a nil value" in r.stderr
    assert "Traceback" not in r.stderr
    # 08's on_task_complete calls rollback_workflow(production_workflow_id, ...) with a nil id.
    assert "Triggering emergency rollback" in r.stderr and "rollback_workflow" in r.stderr
    assert "no workflow id" in r.stderr
    assert "GitOps pipeline failed" in r.stderr
    dep = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web") or {}
    assert dep["spec"]["replicas"] == 2  # nothing was applied

    r = cli("run", *seed(*PROD_FILES), "--param", "workflow_id=production-workflow", stdin="y\n")
    assert r.returncode == 0, r.stderr
    assert "Proceed? (y/N)" in r.stdout
    dep = kube.get(kube.discovery.lookup("apps/v1", "Deployment"), namespace, "web") or {}
    assert dep["spec"]["replicas"] == 0


def prod_workflow(cli: Cli, company: Company, namespace: str, workflow_id: str, cm_name: str) -> Engine:
    """The company's k8s-prod repository holding one ConfigMap, and a workflow on its manifests."""
    company.create("k8s-prod", {"manifests/app.yaml": manifests(namespace, cm(cm_name))})
    eng = cli.engine()
    repo = eng.register_repository({"id": "prod", "url": "https://github.com/company/k8s-prod"})
    eng.create_workflow({"id": workflow_id, "repository": repo.id, "target_path": "manifests"})
    return eng


def test_05_alone_runs_its_task_as_an_implicit_workflow(cli: Cli, company: Company, kube: Kube, namespace: str) -> None:
    prod_workflow(cli, company, namespace, "wf-05", "only-05")
    r = cli("run", *seed("05_kubernetes_gitops.lua"), "--param", "workflow_id=wf-05")
    assert r.returncode == 0, r.stderr
    assert "Running Kubernetes health checks..." in r.stderr
    assert kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "only-05") is not None


def test_06_advanced_sync_policy_and_multi_repository(cli: Cli, company: Company, kube: Kube, namespace: str) -> None:
    company.create("k8s-manifests", {"app.yaml": manifests(namespace, cm("manifests"))})
    for name in ("frontend", "backend", "database"):
        company.create(f"{name}-config", {"app.yaml": manifests(namespace, cm(name))})
    r = cli("run", *seed("06_advanced_sync_policy.lua"))
    assert r.returncode == 0, r.stderr
    eng = cli.engine()
    advanced = next(w for w in eng.workflows() if w.name == "Advanced Sync Policy")
    assert advanced.sync_policy.health_check.failure_mode == "rollback"
    assert advanced.sync_policy.pre_sync_hooks == ["kubectl cluster-info", "helm repo update"]
    assert advanced.sync_policy.retry.max_duration == "10m"
    cms = kube.discovery.lookup("v1", "ConfigMap")
    for name in ("frontend", "backend", "database"):
        assert kube.get(cms, namespace, name) is not None  # synced in dependency order
    assert kube.get(cms, namespace, "manifests") is None  # the advanced workflow was only created
    synced = sorted(h.start_time + h.id for w in eng.workflows() for h in eng.history(w.id))
    assert len(synced) == 3


def test_07_ai_integration_learns_from_recorded_runs(cli: Cli, company: Company, namespace: str) -> None:
    eng = prod_workflow(cli, company, namespace, "wf-07", "ai")
    first = cli("run", *seed("07_ai_integration.lua"), "--param", "gitops_workflow_id=wf-07")
    assert first.returncode == 0, first.stderr
    runs = eng.store.executions("ai_gitops_deploy")
    assert len(runs) == 1 and runs[0]["success"] == 1 and runs[0]["command"] == "kubectl apply -f manifests/"
    # A workflow id that does not exist makes the sync fail; the history then predicts risk.
    for _ in range(3):
        bad = cli("run", *seed("07_ai_integration.lua"), "--param", "gitops_workflow_id=missing")
        assert bad.returncode == 1
    again = cli("run", *seed("07_ai_integration.lua"), "--param", "gitops_workflow_id=wf-07")
    assert "AI detected high deployment risk" in again.stderr
    assert "AI Recommendation:" in again.stderr
