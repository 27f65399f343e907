"""The auto-sync controller against the real cluster and real Git repositories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.controller import Controller
from slipway.engine import Engine
from slipway.kube import Kube

from .conftest import Repo, configmap, deployment, dump

pytestmark = pytest.mark.cluster


def wait_until(check: Callable[[], Any], timeout: float, step: float = 0.05) -> float:
    """Seconds it took for ``check`` to hold; fails the test after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"not true after {timeout}s: {check}")


def cm_value(kube: Kube, namespace: str, name: str) -> str | None:
    obj = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, name)
    return None if obj is None else obj["data"]["v"]


def auto_workflow(engine: Engine, repo: Repo, namespace: str, poll: str = "2s", **options: Any) -> str:
    repo_id = engine.register_repository({"url": repo.url, "poll_interval": poll}).id
    policy = options.pop("sync_policy", {})
    return engine.create_workflow(
        {
            "repository": repo_id,
            "target_path": "k8s",
            "auto_sync": True,
            "destination": {"namespace": namespace},
            "sync_policy": {"health_check": {"timeout": "60s"}, **policy},
            **options,
        }
    ).id


@pytest.fixture
def controller(engine: Engine) -> Iterator[Controller]:
    ctl = Controller(engine, tick=0.1)
    yield ctl
    ctl.stop(10)


def test_a_pushed_commit_is_applied_within_the_poll_interval_plus_2s(
    engine: Engine, kube: Kube, controller: Controller, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
    wf = auto_workflow(engine, repo, namespace, poll="2s")
    controller.start()
    wait_until(lambda: cm_value(kube, namespace, "app") == "1", 20)
    repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
    took = wait_until(lambda: cm_value(kube, namespace, "app") == "2", 20)
    assert took <= 2 + 2, f"commit applied after {took:.1f}s"
    wait_until(lambda: engine.status(wf)["status"] == "synced", 20)
    assert [h.trigger for h in engine.history(wf)] == ["auto", "auto"]


def test_nothing_is_applied_while_nothing_changes(
    engine: Engine, controller: Controller, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}), deployment("web", 1))})
    wf = auto_workflow(engine, repo, namespace, poll="1s")
    controller.start()
    wait_until(lambda: engine.status(wf)["status"] == "synced", 30)
    kube_of_wf = engine.kube_for(engine.workflow(wf))
    writes = {v: kube_of_wf.counts[v] for v in ("PATCH", "DELETE", "POST", "DRYRUN")}
    checks = controller.stats.checks
    time.sleep(4)
    assert controller.stats.checks >= checks + 2  # it kept looking...
    assert len(engine.history(wf)) == 1  # ...but did not sync again
    assert {v: kube_of_wf.counts[v] for v in writes} == writes


def test_stop_is_quick_and_start_again_carries_on(
    engine: Engine, kube: Kube, controller: Controller, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
    auto_workflow(engine, repo, namespace, poll="1s")
    controller.start()
    controller.start()  # a second start is harmless
    wait_until(lambda: cm_value(kube, namespace, "app") == "1", 20)
    started = time.monotonic()
    controller.stop(10)
    assert time.monotonic() - started < 1.5 and not controller.running
    repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
    time.sleep(2)
    assert cm_value(kube, namespace, "app") == "1"  # stopped means stopped
    controller.start()
    wait_until(lambda: cm_value(kube, namespace, "app") == "2", 20)


def test_a_broken_repository_does_not_block_a_healthy_one(
    engine: Engine, kube: Kube, controller: Controller, make_git, namespace: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    good = make_git({"k8s/a.yaml": dump(configmap("good", {"v": "1"}))})
    broken_repo = engine.register_repository(
        {"id": "broken", "url": str(tmp_path / "no-such-repo.git"), "poll_interval": "1s"}
    )
    broken = engine.create_workflow({"id": "broken-wf", "repository": broken_repo.id, "auto_sync": True,
                                     "destination": {"namespace": namespace}}).id  # fmt: skip
    healthy = auto_workflow(engine, good, namespace, poll="1s")
    controller.start()
    wait_until(lambda: cm_value(kube, namespace, "good") == "1", 20)
    wait_until(lambda: engine.status(broken)["status"] == "degraded", 20)
    assert "source error" in engine.store.workflow_state(broken)["status_message"]
    assert "broken" in engine.store.workflow_state(broken)["status_message"]
    good.commit({"k8s/a.yaml": dump(configmap("good", {"v": "2"}))})
    wait_until(lambda: cm_value(kube, namespace, "good") == "2", 20)
    wait_until(lambda: engine.status(healthy)["status"] == "synced", 20)  # applied first, recorded just after


def test_a_rolled_back_workflow_stays_at_its_rollback_until_a_new_commit(
    engine: Engine, kube: Kube, controller: Controller, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}), deployment("web", 1, progressDeadlineSeconds=3))})
    wf = auto_workflow(
        engine,
        repo,
        namespace,
        poll="1s",
        sync_policy={"auto_prune": True, "health_check": {"timeout": "30s", "failure_mode": "rollback"}},
    )
    controller.start()
    wait_until(lambda: cm_value(kube, namespace, "app") == "1", 30)
    bad = deployment("web", 1, progressDeadlineSeconds=3, pod={"nodeSelector": {"no-such-node": "x"}})
    v2 = repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}), bad)})
    wait_until(lambda: any(h.kind == "rollback" for h in engine.history(wf)), 60, step=0.2)
    wait_until(lambda: engine.store.workflow_state(wf)["sync_owner"] is None, 30)
    assert cm_value(kube, namespace, "app") == "1"
    assert engine.store.workflow_state(wf)["hold_revision"] == v2
    count = len(engine.history(wf))
    time.sleep(4)  # several polls see v2 again: it stays rolled back
    assert len(engine.history(wf)) == count
    repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "3"}), deployment("web", 1))})
    wait_until(lambda: cm_value(kube, namespace, "app") == "3", 30)
    wait_until(lambda: engine.status(wf)["status"] == "synced", 30)
    assert engine.store.workflow_state(wf)["hold_revision"] is None


def test_self_heal_restores_live_drift(
    engine: Engine, kube: Kube, controller: Controller, make_git, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "git"}))})
    wf = auto_workflow(engine, repo, namespace, poll="1s", sync_policy={"self_heal": True, "self_heal_interval": "1s"})
    controller.start()
    wait_until(lambda: cm_value(kube, namespace, "app") == "git", 20)
    kube.apply(kube.discovery.lookup("v1", "ConfigMap"), configmap("app", {"v": "edited"}, namespace=namespace),
               field_manager="kubectl-edit", force=True)  # fmt: skip
    wait_until(lambda: cm_value(kube, namespace, "app") == "git", 20)
    assert any(h.trigger == "self-heal" for h in engine.history(wf))


def _controller_process(home: Path, cache: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SLIPWAY_HOME": str(home), "SLIPWAY_GIT_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "slipway", "controller", "--concurrency", "2"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_the_controller_daemon(
    engine: Engine, kube: Kube, make_git, namespace: str, slipway_home: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """`slipway controller`: picks up new workflows, logs each sync, survives kill -9, stops on SIGTERM."""
    log = tmp_path / "controller.log"
    proc = _controller_process(slipway_home, tmp_path / "cache", log)
    try:
        time.sleep(1)
        # Registered by this (another) process after the controller started.
        repo = make_git({"k8s/a.yaml": dump(configmap("app", {"v": "1"}))})
        wf = auto_workflow(engine, repo, namespace, poll="1s")
        wait_until(lambda: cm_value(kube, namespace, "app") == "1", 30, step=0.2)
        wait_until(lambda: f"auto-sync {wf} at" in log.read_text(), 10)
        assert "succeeded" in log.read_text()

        # kill -9, with a sync in flight: the next controller marks it interrupted and carries on.
        cfg = engine.workflow(wf)
        cfg.sync_policy.pre_sync_hooks = ["sleep 30"]
        engine.store.put_workflow(cfg)
        repo.commit({"k8s/a.yaml": dump(configmap("app", {"v": "2"}))})
        wait_until(lambda: engine.store.workflow_state(wf)["sync_owner"] is not None, 30, step=0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        cfg.sync_policy.pre_sync_hooks = []
        engine.store.put_workflow(cfg)
        proc = _controller_process(slipway_home, tmp_path / "cache", log)
        wait_until(lambda: cm_value(kube, namespace, "app") == "2", 30, step=0.2)
        # The object is live before the sync's record is finished (health is waited for first).
        wait_until(lambda: engine.history(wf)[0].status != "running", 30, step=0.2)
        statuses = [h.status for h in engine.history(wf)]
        assert statuses[0] == "succeeded" and "interrupted" in statuses

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        text = log.read_text()
        assert "received SIGTERM" in text and "auto-sync controller stopped" in text
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
