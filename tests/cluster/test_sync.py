"""Syncs on the real cluster: apply, prune, the empty-render guard, hooks, health modes, rollback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.errors import ManifestError, SyncInProgress
from slipway.kube import Kube
from slipway.source import GitSource
from slipway.store import Store

from .conftest import add_workflow, configmap, deployment, dump, service

pytestmark = pytest.mark.cluster

UNSCHEDULABLE = {"nodeSelector": {"no-such-node": "true"}}


def get(kube: Kube, kind: str, namespace: str, name: str, api_version: str = "v1") -> dict[str, Any] | None:
    return kube.get(kube.discovery.lookup(api_version, kind), namespace, name)


def test_first_sync_then_a_noop_resync_that_writes_nothing(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/app.yaml": dump(configmap("cfg"), service("web"), deployment("web", 2))})
    wf = add_workflow(engine, repo, namespace, name="Web")
    first = engine.sync(wf)
    assert first.status == "succeeded", first.message
    assert first.message.startswith("Sync completed successfully")
    assert first.commit_hash and len(first.commit_hash) == 40
    assert first.metrics.resources_processed == 3 and first.metrics.resources_applied == 3
    assert first.metrics.resources_skipped == 0 and first.metrics.duration.endswith("s")
    dep = get(kube, "Deployment", namespace, "web", "apps/v1") or {}
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "slipway"
    assert dep["metadata"]["labels"]["slipway.dev/workflow"] == wf
    assert "slipway.dev/applied-hash" in dep["metadata"]["annotations"]
    assert dep["status"]["availableReplicas"] == 2  # health waited for the rollout
    assert any(m["manager"] == "slipway" and m["operation"] == "Apply" for m in dep["metadata"]["managedFields"])

    status = engine.status(wf)
    assert set(status) == {"id", "name", "status", "auto_sync", "repository", "last_sync_result"}
    assert status["status"] == "synced" and status["name"] == "Web"
    last = status["last_sync_result"]
    assert set(last) == {"id", "status", "start_time", "commit_hash", "message", "metrics"}
    assert set(last["metrics"]) == {
        "duration", "resources_processed", "resources_applied", "resources_skipped", "conflicts_resolved",
        "resources_deleted",  # beyond the seed: deletions are counted apart from applies
    }  # fmt: skip
    assert last["id"] == first.id and last["status"] == "succeeded"

    kube_of_wf = engine.kube_for(engine.workflow(wf))
    before = dict(kube_of_wf.counts)
    versions = {n: (get(kube, k, namespace, n, v) or {})["metadata"]["resourceVersion"]
                for k, n, v in [("ConfigMap", "cfg", "v1"), ("Service", "web", "v1")]}  # fmt: skip
    again = engine.sync(wf)
    assert again.status == "succeeded"
    assert again.metrics.resources_applied == 0 and again.metrics.resources_skipped == 3
    spent = {k: kube_of_wf.counts[k] - before.get(k, 0) for k in kube_of_wf.counts}
    assert not any(spent.get(verb) for verb in ("PATCH", "POST", "PUT", "DELETE", "DRYRUN")), spent
    for (kind, name, v), rv in zip(
        [("ConfigMap", "cfg", "v1"), ("Service", "web", "v1")], versions.values(), strict=True
    ):
        assert (get(kube, kind, namespace, name, v) or {})["metadata"]["resourceVersion"] == rv


def test_prune_on_and_off(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"), configmap("b"))})
    keep = add_workflow(engine, repo, namespace, name="keep")
    assert engine.sync(keep).status == "succeeded"
    repo.commit({"k8s/a.yaml": dump(configmap("a"))})
    result = engine.sync(keep)
    assert result.status == "succeeded" and result.metrics.resources_applied == 0
    assert get(kube, "ConfigMap", namespace, "b") is not None  # auto_prune off: it stays

    wf = engine.workflow(keep)
    wf.sync_policy.auto_prune = True
    engine.store.put_workflow(wf)
    result = engine.sync(keep)
    assert result.status == "succeeded" and result.metrics.resources_applied == 0
    assert result.metrics.resources_deleted == 1 and "deleted 1" in result.message
    assert get(kube, "ConfigMap", namespace, "b") is None
    assert get(kube, "ConfigMap", namespace, "a") is not None


def test_empty_render_never_prunes_everything_unless_allowed(
    engine: Engine, kube: Kube, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"), configmap("b")), "README.md": "docs"})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    assert engine.sync(wf).status == "succeeded"
    repo.commit({"k8s/a.yaml": "# everything commented out\n"})
    result = engine.sync(wf)
    assert result.status == "failed" and "target_path 'k8s' renders no objects" in result.message
    assert "it holds 1 file(s): a.yaml" in result.message and "allow_empty" in result.message
    assert get(kube, "ConfigMap", namespace, "a") is not None and get(kube, "ConfigMap", namespace, "b") is not None
    with pytest.raises(ManifestError, match="renders no objects"):  # the diff says what the sync does
        engine.plan(wf)

    cfg = engine.workflow(wf)
    cfg.sync_policy.allow_empty = True
    engine.store.put_workflow(cfg)
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert get(kube, "ConfigMap", namespace, "a") is None and get(kube, "ConfigMap", namespace, "b") is None


def test_failing_pre_hook_applies_nothing(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(
        engine, repo, namespace, sync_policy={"pre_sync_hooks": ["echo checking; echo 'not ready' >&2; exit 3"]}
    )
    result = engine.sync(wf)
    assert result.status == "failed"
    assert "pre-sync hook" in result.message and "exited with 3" in result.message and "not ready" in result.message
    assert get(kube, "ConfigMap", namespace, "a") is None
    assert result.hooks[0]["exit_code"] == 3 and "checking" in result.hooks[0]["output"]
    assert engine.status(wf)["status"] == "failed"


def test_hooks_get_the_sync_context_and_a_failing_post_hook_fails_the_sync(
    engine: Engine, kube: Kube, make_git, namespace: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "hook.env"
    kubectl = "kubectl get configmap a -o jsonpath='{.data.k}'"
    repo = make_git({"k8s/a.yaml": dump(configmap("a", {"k": "from-git"}))})
    wf = add_workflow(
        engine, repo, namespace,
        sync_policy={
            "pre_sync_hooks": [f"env | grep -E '^(SLIPWAY_|KUBECONFIG)' > {out}"],
            "post_sync_hooks": [f"{kubectl} -n {namespace}", "echo post-failure; exit 1"],
        },
    )  # fmt: skip
    result = engine.sync(wf)
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert env["SLIPWAY_WORKFLOW_ID"] == wf and env["SLIPWAY_REVISION"] == result.commit_hash
    assert env["SLIPWAY_SYNC_ID"] == result.id and env["SLIPWAY_NAMESPACE"] == namespace
    assert Path(env["KUBECONFIG"]).exists()
    assert result.hooks[1]["output"] == "from-git"  # kubectl in the hook reached the destination
    assert result.status == "failed" and "post-sync hook 'echo post-failure; exit 1' exited with 1" in result.message
    assert get(kube, "ConfigMap", namespace, "a") is not None  # the apply happened; the sync still failed


def test_hook_timeout(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"hook_timeout": "1s", "pre_sync_hooks": ["sleep 30"]})
    started = time.monotonic()
    result = engine.sync(wf)
    assert time.monotonic() - started < 15
    assert result.status == "failed" and "timed out" in result.message


def _unavailable_v2(engine: Engine, make_git, namespace: str, **options: Any) -> tuple[str, Any, str, str]:  # type: ignore[no-untyped-def]
    """v1 rolls out; v2 adds a nodeSelector nothing matches, so it can never become Available."""
    repo = make_git(
        {"k8s/app.yaml": dump(configmap("cfg", {"v": "1"}), deployment("web", 1, progressDeadlineSeconds=4))}
    )
    policy = options.pop("sync_policy", {})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True, **policy}, **options)
    v1 = engine.sync(wf)
    assert v1.status == "succeeded", v1.message
    v2 = repo.commit({"k8s/app.yaml": dump(configmap("cfg", {"v": "2"}), configmap("added"),
                                           deployment("web", 1, progressDeadlineSeconds=4, pod=UNSCHEDULABLE))})  # fmt: skip
    return wf, repo, v1.commit_hash or "", v2


def test_failure_mode_ignore(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    wf, _, _, v2 = _unavailable_v2(
        engine, make_git, namespace, sync_policy={"health_check": {"timeout": "40s", "failure_mode": "ignore"}}
    )
    result = engine.sync(wf)
    assert result.status == "succeeded" and result.commit_hash == v2
    assert "ignored" in result.message and "Deployment/web is degraded" in result.message
    assert any(h["resource"] == "Deployment/web" and h["status"] == "Degraded" for h in result.health)


def test_failure_mode_fail_without_rollback(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    wf, _, _, _ = _unavailable_v2(
        engine, make_git, namespace, sync_policy={"health_check": {"timeout": "40s", "failure_mode": "fail"}}
    )
    result = engine.sync(wf)
    assert result.status == "failed" and "Deployment/web is degraded: exceeded its progress deadline" in result.message
    assert "rolled back" not in result.message
    assert engine.status(wf)["status"] == "failed"
    assert (get(kube, "ConfigMap", namespace, "cfg") or {})["data"]["v"] == "2"  # v2 stays applied
    assert [h.kind for h in engine.history(wf)] == ["sync", "sync"]


@pytest.mark.parametrize("how", ["failure_mode_rollback", "rollback_on_failure"])
def test_automatic_rollback_after_a_rollout_that_never_becomes_available(
    engine: Engine, kube: Kube, make_git, namespace: str, how: str
) -> None:  # type: ignore[no-untyped-def]
    options: dict[str, Any] = {"sync_policy": {"health_check": {"timeout": "40s", "failure_mode": "rollback"}}}
    if how == "rollback_on_failure":
        options = {
            "rollback_on_failure": True,
            "sync_policy": {"health_check": {"timeout": "40s", "failure_mode": "fail"}},
        }
    wf, _, v1, v2 = _unavailable_v2(engine, make_git, namespace, **options)
    result = engine.sync(wf)
    assert result.status == "failed" and result.commit_hash == v2
    assert f"rolled back to {v1[:12]}" in result.message
    # The cluster is back at v1: the changed object restored, the added one deleted, healthy again.
    assert (get(kube, "ConfigMap", namespace, "cfg") or {})["data"]["v"] == "1"
    assert get(kube, "ConfigMap", namespace, "added") is None
    dep = get(kube, "Deployment", namespace, "web", "apps/v1") or {}
    assert "nodeSelector" not in dep["spec"]["template"]["spec"]
    history = engine.history(wf)
    assert [h.kind for h in history] == ["rollback", "sync", "sync"]
    rollback, failed = history[0], history[1]
    assert rollback.status == "succeeded" and rollback.reason and "automatic rollback" in rollback.reason
    assert rollback.from_revision == v2 and rollback.commit_hash == v1 and rollback.end_time
    assert failed.rolled_back
    state = engine.store.workflow_state(wf)
    assert state["hold_revision"] == v2 and state["applied_revision"] == v1


def test_manual_rollback_restores_a_deleted_object(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("stays", {"v": "1"}), configmap("deleted-later", {"keep": "me"}))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    v1 = engine.sync(wf)
    repo.commit({"k8s/a.yaml": dump(configmap("stays", {"v": "2"}), configmap("new-in-v2"))})
    v2 = engine.sync(wf)
    assert v2.status == "succeeded" and get(kube, "ConfigMap", namespace, "deleted-later") is None

    rb = engine.rollback(wf, "bad release")
    assert rb.status == "succeeded", rb.message
    assert rb.reason == "bad release" and rb.commit_hash == v1.commit_hash and rb.from_revision == v2.commit_hash
    assert (get(kube, "ConfigMap", namespace, "deleted-later") or {})["data"] == {"keep": "me"}
    assert (get(kube, "ConfigMap", namespace, "stays") or {})["data"] == {"v": "1"}
    assert get(kube, "ConfigMap", namespace, "new-in-v2") is None
    assert engine.status(wf)["status"] == "synced"
    # Each rollback steps back one deployment: the next one undoes v1 itself, deleting what it created...
    before_first = engine.rollback(wf, "undo the first release")
    assert before_first.status == "succeeded" and before_first.commit_hash is None
    assert (
        get(kube, "ConfigMap", namespace, "stays") is None
        and get(kube, "ConfigMap", namespace, "deleted-later") is None
    )
    # ...and then there is nothing left to roll back: a clear error, not a crash.
    from slipway.errors import NotFoundError

    with pytest.raises(NotFoundError, match="has no sync to roll back"):
        engine.rollback(wf, "and again")


def test_rollback_of_unknown_or_missing_workflow_is_a_clear_error(engine: Engine) -> None:
    from slipway.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no workflow id"):
        engine.rollback(None, "x")
    with pytest.raises(NotFoundError, match="'nope' does not exist"):
        engine.rollback("nope", "x")


def test_one_sync_at_a_time(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"pre_sync_hooks": ["sleep 3"]})
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(engine.sync(wf)))
    first.start()
    deadline = time.monotonic() + 10
    while engine.store.workflow_state(wf)["sync_owner"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(SyncInProgress, match="sync in progress"):
        engine.sync(wf)
    assert engine.status(wf)["status"] == "syncing"
    waited = engine.sync(wf, wait=30)  # a second caller that is willing to wait gets its turn
    first.join()
    assert results[0].status == "succeeded" and waited.status == "succeeded"


def test_retry_transient_connection_failures(
    engine: Engine, kube: Kube, make_git, namespace: str, tmp_path: Path, cluster
) -> None:  # type: ignore[no-untyped-def]
    """A TCP relay in front of the real API server that refuses the first connections."""
    import socket

    from tests.gitservers import free_port

    target = ("127.0.0.1", cluster.ports["apiserver"])
    port = free_port()
    refused = [0]
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(0.2)

    def pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed: the test is over
            if refused[0] < 3:
                refused[0] += 1
                conn.close()  # a connection error, as when the server restarts
                continue
            upstream = socket.create_connection(target)
            threading.Thread(target=pump, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    text = Path(cluster.kubeconfig).read_text().replace(f":{cluster.ports['apiserver']}", f":{port}")
    flaky = tmp_path / "flaky.kubeconfig"
    flaky.write_text(text)
    try:
        repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
        wf = add_workflow(engine, repo, namespace, sync_policy={"retry": {"limit": 5, "backoff": "fixed"}})
        cfg = engine.workflow(wf)
        cfg.destination.kubeconfig = str(flaky)
        engine.store.put_workflow(cfg)
        result = engine.sync(wf)
        assert refused[0] == 3
        assert result.status == "succeeded", result.message
        assert get(kube, "ConfigMap", namespace, "a") is not None
    finally:
        stop.set()
        server.join(2)
        listener.close()


def test_permanent_errors_are_not_retried(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    from slipway.kube.client import error_from_response

    assert not error_from_response("apply", "x", 422, b'{"reason": "Invalid"}').retryable
    assert not error_from_response("apply", "x", 403, b'{"reason": "Forbidden"}').retryable
    for status in (409, 429, 500, 503, 504):
        assert error_from_response("apply", "x", status, b"{}").retryable
    # Against the server: a Role granting what the identity lacks is forbidden... our admin can do
    # anything, so use an object the server rejects at apply time and count the attempts.
    bad = deployment("bad", 1)
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "nope"}
    repo = make_git({"k8s/a.yaml": dump(bad)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"retry": {"limit": 5}})
    started = time.monotonic()
    result = engine.sync(wf)
    assert result.status == "failed" and "validation" in result.message
    assert time.monotonic() - started < 5  # five retries with backoff would take 31s


def test_sync_killed_mid_way_is_marked_interrupted_and_the_next_sync_is_clean(
    engine: Engine, kube: Kube, make_git, namespace: str, slipway_home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"), deployment("web", 1))})
    marker = tmp_path / "hook-started"
    wf = add_workflow(engine, repo, namespace, sync_policy={"post_sync_hooks": [f"touch {marker}; sleep 60"]})
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from slipway.engine import Engine\nfrom slipway.source import GitSource\nfrom slipway.store import Store\n"
        f"e = Engine(Store(home=Path({str(slipway_home)!r})), GitSource(cache_dir=Path({str(tmp_path / 'gc2')!r})))\n"
        f"e.sync({wf!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the sync never reached its post-sync hook"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    running = engine.store.history(wf)[0]
    assert running.status == "running"  # the record the killed process left
    # The next process to look marks it interrupted; the next sync runs cleanly.
    fresh = Engine(Store(home=slipway_home), GitSource(cache_dir=tmp_path / "gc3"))
    assert fresh.store.get_sync(running.id).status == "interrupted"
    cfg = fresh.workflow(wf)
    cfg.sync_policy.post_sync_hooks = []
    fresh.store.put_workflow(cfg)
    result = fresh.sync(wf)
    assert result.status == "succeeded", result.message
    assert [h.status for h in fresh.history(wf)] == ["succeeded", "interrupted"]
    assert fresh.status(wf)["status"] == "synced"


def test_secret_values_never_reach_the_state_store_or_logs(
    engine: Engine, make_git, namespace: str, slipway_home: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    value = "s3cr3t-" + os.urandom(6).hex()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": value}}
    repo = make_git({"k8s/s.yaml": dump(secret)})
    wf = add_workflow(engine, repo, namespace, sync_policy={"auto_prune": True})
    caplog.set_level("DEBUG", logger="slipway")
    assert engine.sync(wf).status == "succeeded"
    repo.commit({"k8s/s.yaml": dump({**secret, "stringData": {"password": value + "-v2"}})})
    assert engine.sync(wf).status == "succeeded"
    assert engine.rollback(wf, "test").status == "succeeded"
    import base64

    encoded = base64.b64encode(value.encode()).decode()
    blobs = b"".join(p.read_bytes() for p in slipway_home.glob("state.db*"))
    assert blobs, "no state store found"
    for needle in (value, encoded):
        assert needle.encode() not in blobs
        assert needle not in caplog.text
        assert needle not in json.dumps([h.changes for h in engine.history(wf)])


def _workload(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    pod = {
        "metadata": {"labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/x:1"}]},
    }
    body: dict[str, Any] = {"selector": {"matchLabels": {"app": name}}, "template": pod, **spec}
    if kind == "Job":
        body = {"template": {**pod, "spec": {**pod["spec"], "restartPolicy": "Never"}}, **spec}
    api = "batch/v1" if kind == "Job" else "apps/v1"
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": body}


def test_health_waits_for_real_rollouts_of_each_workload_kind(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    objs = [
        service("db"),
        _workload("StatefulSet", "db", replicas=2, serviceName="db"),
        _workload("DaemonSet", "agent"),
        _workload("Job", "migrate"),
        deployment("web", 2),
    ]
    repo = make_git({"k8s/all.yaml": dump(*objs)})
    wf = add_workflow(engine, repo, namespace)
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    states = {h["resource"]: (h["status"], h["message"]) for h in result.health}
    assert states["StatefulSet/db"] == ("Healthy", "2 of 2 replicas ready")
    assert states["DaemonSet/agent"] == ("Healthy", "1 of 1 pods available")
    assert states["Job/migrate"] == ("Healthy", "completed")
    assert states["Deployment/web"] == ("Healthy", "2 of 2 replicas available")
    assert states["Service/db"][0] == "Healthy"


def test_health_timeout_names_what_is_not_healthy(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    repo = make_git({"k8s/pvc.yaml": dump(pvc, configmap("fine"))})
    wf = add_workflow(engine, repo, namespace, sync_policy={"health_check": {"timeout": "3s"}})
    started = time.monotonic()
    result = engine.sync(wf)
    assert 3 <= time.monotonic() - started < 20
    assert result.status == "failed"
    assert "PersistentVolumeClaim/data not healthy after 3s: phase Pending" in result.message
