"""The fronts on the kubernetes store as a user runs them: Lua seed examples, the CLI with credentials and a
controller replica, what never appears in the cluster or a log, and ``slipway migrate --to kubernetes``."""

from __future__ import annotations

import base64
import json
import secrets
import signal
import time
from typing import Any

import pytest
import yaml

from slipway.kube import Kube
from slipway.store import Store
from slipway.store.kubernetes import KubernetesStore
from slipway.store.kubernetes.names import KEY_SECRET, SECRETS
from tests.gitservers import HttpGitServer, commit, make_repo, origin_of, push
from tests.kubestore import decoded_secrets, everything_in, kubectl
from tests.manifests import configmap

from .conftest import SEED, Cli, Company, manifests

pytestmark = [pytest.mark.cluster, pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)]


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {timeout}s")


def test_lua_seed_examples_write_objects_kubectl_lists(cli: Cli, cluster: Any) -> None:
    r = cli("run", str(SEED / "02_repository_and_workflow.lua"))
    assert r.returncode == 0, r.stderr
    assert "Production Infrastructure: active" in r.stderr and "workflow production-workflow" in r.stderr
    ns = cli.env["SLIPWAY_NAMESPACE"]
    listed = kubectl(cluster.kubeconfig, "-n", ns, "get", "workflows,repositories")
    assert "workflow.slipway.dev/production-workflow" in listed and "active" in listed
    assert "repository.slipway.dev/production-repo" in listed
    spec = kubectl(cluster.kubeconfig, "-n", ns, "get", "workflow", "production-workflow", "-o", "jsonpath={.spec}")
    assert json.loads(spec)["syncPolicy"] == {"autoPrune": True, "healthCheck": {"timeout": "10m"}}
    repo = cli.engine().repository("production-repo")
    assert repo.credentials is not None and repo.credentials.token == "ghp_xxxxxxxxxxxx"
    seen = everything_in(cluster.kubeconfig, ns) + decoded_secrets(cluster.kubeconfig, ns)
    assert "ghp_xxxxxxxxxxxx" not in seen


def test_lua_pipeline_deploys_and_records_executions(cli: Cli, company: Company, kube: Kube, namespace: str) -> None:
    company.create("k8s-prod", {"manifests/app.yaml": manifests(namespace, configmap("settings", {"mode": "a"}))})
    files = [str(SEED / f) for f in ("04_production_deploy.lua", "05_kubernetes_gitops.lua", "08_dsl_pipeline.lua")]
    r = cli("run", *files, "--param", "workflow_id=production-workflow")
    assert r.returncode == 0, r.stderr
    assert "Production deployment successful!" in r.stderr and "GitOps pipeline completed successfully!" in r.stderr
    eng = cli.engine()
    status = eng.status("production-workflow")
    assert status["status"] == "synced" and status["last_sync_result"]["status"] == "succeeded"
    assert eng.store.executions("kubernetes_gitops_deploy")  # the ai module's record, in the cluster


def test_credentials_secret_values_and_the_key_stay_out_of_objects_and_logs(
    cli: Cli, kube: Kube, namespace: str, git_http_server: HttpGitServer, cluster: Any
) -> None:
    values = {"v1": "first-" + secrets.token_hex(8), "v2": "second-" + secrets.token_hex(8)}

    def secret(value: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
                "stringData": {"password": value}}  # fmt: skip

    name = f"kstore-{secrets.token_hex(4)}/app"
    work = git_http_server.create_repo(name, {"k8s/a.yaml": yaml.safe_dump(secret(values["v1"]))})
    env_cli = Cli({**cli.env, "GIT_PW": git_http_server.password}, cli.home, cli.cwd)
    out = [env_cli("repo", "add", git_http_server.url(name), "--id", "app", "--username", git_http_server.username,
                   "--password-env", "GIT_PW", "--poll-interval", "1s")]  # fmt: skip
    out.append(cli("workflow", "create", "--id", "app-wf", "--repository", "app", "--path", "k8s", "--namespace",
                   namespace, "--prune", "--auto-sync"))  # fmt: skip
    assert all(r.returncode == 0 for r in out), [r.stderr for r in out]
    log = cli.cwd / "controller.log"
    proc = cli.popen("--debug", "controller", "--shards", "1", "--identity", "only", log=log)
    secrets_info = kube.discovery.lookup("v1", "Secret")

    def live() -> str | None:
        obj = kube.get(secrets_info, namespace, "db")
        return base64.b64decode(obj["data"]["password"]).decode() if obj else None

    try:
        wait_for(lambda: live() == values["v1"], 60, "first sync")
        commit(work, {"k8s/a.yaml": yaml.safe_dump(secret(values["v2"]))})
        push(work)
        wait_for(lambda: live() == values["v2"], 60, "second sync")
        wait_for(lambda: cli.engine().status("app-wf")["status"] == "synced", 30, "synced")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        out.append(cli("rollback", "app-wf", "--reason", "v2 leaked nothing"))  # restores v1 from its sealed backup
        assert out[-1].returncode == 0, out[-1].stderr
        assert live() == values["v1"]
        out += [cli("history", "app-wf"), cli("-o", "json", "history", "app-wf"), cli("workflow", "show", "app-wf"),
                cli("-o", "json", "workflow", "status", "app-wf"), cli("repo", "show", "app")]  # fmt: skip
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ns = cli.env["SLIPWAY_NAMESPACE"]
    objects = everything_in(cluster.kubeconfig, ns)
    seen = "\n".join([objects, decoded_secrets(cluster.kubeconfig, ns), log.read_text(),
                      *(r.stdout + r.stderr for r in out)])  # fmt: skip
    assert "slipway-sync-" in objects and "app-wf" in objects  # the search does look at the records
    for text in (git_http_server.password, *values.values()):
        for form in (text, base64.b64encode(text.encode()).decode()):
            assert form not in seen, f"{form!r} found"
    key = (kube.get(SECRETS, ns, KEY_SECRET) or {})["data"]["key"]
    assert objects.count(key) == 1  # in its own Secret, and nowhere else
    assert base64.b64decode(key).decode() not in seen.replace(base64.b64decode(key).decode(), "", 1)


def test_migrate_a_sqlite_store_into_the_cluster(cli: Cli, kube: Kube, namespace: str, cluster: Any) -> None:
    hook = "https://hooks.example.com/services/T0/" + secrets.token_hex(8)
    local = Cli({k: v for k, v in cli.env.items() if k != "SLIPWAY_STORE"} | {"HOOK": hook}, cli.home, cli.cwd)
    work = make_repo(cli.cwd / "app", {"k8s/a.yaml": manifests(namespace, configmap("a", {"v": "1"}),
                                                                  configmap("b", {"v": "1"}))})  # fmt: skip
    assert local("repo", "add", str(origin_of(work)), "--id", "app").returncode == 0
    assert local("workflow", "create", "--id", "app-wf", "--repository", "app", "--path", "k8s", "--namespace",
                 namespace, "--prune", "--history-limit", "10", "--notify-url-env", "HOOK").returncode == 0  # fmt: skip
    made = local("token", "create", "ci", "--role", "operator")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert local("sync", "app-wf", "--yes").returncode == 0
    commit(work, {"k8s/a.yaml": manifests(namespace, configmap("a", {"v": "2"}), configmap("b", {"v": "1"}))})
    push(work)
    assert local("sync", "app-wf", "--yes").returncode == 0
    assert local("rollback", "app-wf", "--reason", "before the move").returncode == 0
    before = Store(home=cli.home)
    history = before.history("app-wf")
    state, inventory = before.workflow_state("app-wf"), before.inventory("app-wf")

    moved = local("-o", "json", "migrate", "--to", "kubernetes")
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout) == {"repositories": 1, "workflows": 1, "syncs": 3, "inventory": 2,
                                        "executions": 0, "tokens": 1}  # fmt: skip
    again = local("-o", "json", "migrate", "--to", "kubernetes")
    assert again.returncode == 0 and json.loads(again.stdout)["syncs"] == 0  # nothing copied twice

    after = KubernetesStore(namespace=cli.env["SLIPWAY_NAMESPACE"])
    assert after.instance_id == before.instance_id
    assert [(h.id, h.kind, h.status, h.commit_hash, h.rolled_back, h.actor) for h in after.history("app-wf")] == [
        (h.id, h.kind, h.status, h.commit_hash, h.rolled_back, h.actor) for h in history
    ]
    assert history[0].actor and history[0].actor.startswith("user:")
    # The token works against the cluster store as it did against SQLite; the hook URL came along, sealed.
    who = cli.engine().authenticate(token)
    assert who is not None and (who.name, who.role) == ("ci", "operator")
    notify = after.get_workflow("app-wf").notify
    assert notify is not None and notify.url == hook
    ns = cli.env["SLIPWAY_NAMESPACE"]
    seen = "\n".join([everything_in(cluster.kubeconfig, ns), decoded_secrets(cluster.kubeconfig, ns),
                      moved.stdout, moved.stderr, again.stdout, again.stderr])  # fmt: skip
    for text in (token, token.split("_", 2)[2], hook):
        assert text not in seen and base64.b64encode(text.encode()).decode() not in seen
    assert after.inventory("app-wf") == inventory
    moved_state = after.workflow_state("app-wf")
    assert {k: moved_state[k] for k in ("status", "applied_revision", "hold_revision", "last_sync_id")} == {
        k: state[k] for k in ("status", "applied_revision", "hold_revision", "last_sync_id")
    }
    assert after.sync_objects(history[1].id, "desired") == before.sync_objects(history[1].id, "desired")

    # In the cluster store, what the SQLite store applied is its own: a sync prunes by the copied inventory.
    commit(work, {"k8s/a.yaml": manifests(namespace, configmap("a", {"v": "3"}))})
    push(work)
    r = cli("-o", "json", "sync", "app-wf", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout)
    assert result["metrics"]["resources_deleted"] == 1 and result["metrics"]["resources_applied"] == 1
    assert kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "b") is None
    assert len(after.history("app-wf")) == 4
