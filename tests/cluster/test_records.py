"""What is recorded stays true and bounded: history limits, hook output, failures nobody sees, YAML as kubectl reads it."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from slipway import tools
from slipway.controller import Controller
from slipway.engine import Engine
from slipway.errors import Cancelled
from slipway.kube import Kube
from slipway.store import Store
from tests.gitservers import free_port

from .conftest import add_workflow, configmap, dump
from .test_controller import auto_workflow, wait_until


def test_history_keeps_the_last_n_syncs_and_their_objects_go_with_them(
    engine: Engine, make_git, namespace: str, slipway_home: Path
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a", {"v": "0"}))})
    wf = add_workflow(engine, repo, namespace, history_limit=3)
    for i in range(1, 7):
        repo.commit({"k8s/a.yaml": dump(configmap("a", {"v": str(i)}), configmap(f"only-{i}", {"v": str(i)}))})
        assert engine.sync(wf).status == "succeeded"
    history = engine.history(wf)
    assert len(history) == 3 and all(h.status == "succeeded" for h in history)
    db = sqlite3.connect(slipway_home / "state.db")
    kept = {r[0] for r in db.execute("SELECT DISTINCT sync_id FROM sync_objects")}
    assert kept == {h.id for h in history}
    referenced = {r[0] for r in db.execute("SELECT DISTINCT blob FROM sync_objects WHERE blob IS NOT NULL")}
    stored = {r[0] for r in db.execute("SELECT hash FROM blobs")}
    assert stored == referenced  # nothing left behind that no sync refers to
    assert engine.rollback(wf, "still possible within the limit").status == "succeeded"


def test_hook_output_never_keeps_a_secret(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    value = "s3cr3t-" + str(time.time_ns())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": value}}
    repo = make_git({"k8s/a.yaml": dump(secret), "k8s/leak.sh": f"echo the password is {value}\n"})
    wf = add_workflow(engine, repo, namespace, sync_policy={"pre_sync_hooks": [f"echo password={value}"]})
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    assert result.hooks[0]["exit_code"] == 0 and "password=********" in result.hooks[0]["output"]
    assert value not in str(engine.history(wf)[0].hooks)


def test_an_unexpected_error_in_a_sync_is_logged_with_the_workflow(
    engine: Engine, make_git, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = auto_workflow(engine, repo, namespace, poll="1s")

    def broken(kubeconfig: str | None, context: str | None) -> Kube:
        raise RuntimeError("the kube factory is broken")

    faulty = Engine(engine.store, engine.source, kube_factory=broken)
    ctl = Controller(faulty, tick=0.1)
    with caplog.at_level(logging.ERROR, logger="slipway.controller"):
        ctl.start()
        try:
            wait_until(lambda: any(wf in r.getMessage() and "unexpected error" in r.getMessage()
                                   for r in caplog.records), 20)  # fmt: skip
        finally:
            ctl.stop(10)
    record = next(r for r in caplog.records if wf in r.getMessage())
    assert record.exc_info is not None and "the kube factory is broken" in str(record.exc_info[1])
    assert engine.run_state(wf)["status"] == "degraded"


def test_a_plan_stuck_on_an_unreachable_cluster_is_cancelled_at_once(
    engine: Engine, make_git, namespace: str, tmp_path: Path, cluster: Any
) -> None:  # type: ignore[no-untyped-def]
    import yaml

    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    for c in config["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    wf = add_workflow(engine, repo, namespace, destination={"namespace": namespace, "kubeconfig": str(dead)},
                      sync_policy={"retry": {"limit": 10, "backoff": "fixed", "max_duration": "5m"}})  # fmt: skip
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        engine.plan(wf, cancel=cancel)
    assert time.monotonic() - started < 5  # not the minutes its retry policy would allow


def test_yaml_dates_apply_as_kubectl_applies_them(engine: Engine, kube: Kube, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dates\n  annotations:\n    released: 2024-01-01\n"
        "data:\n  released: 2024-01-01\n  at: 2024-01-01T10:00:00Z\n  clock: 12:30\n  flag: 'yes'\n"
    )
    repo = make_git({"k8s/a.yaml": text})
    wf = add_workflow(engine, repo, namespace)
    result = engine.sync(wf)
    assert result.status == "succeeded", result.message
    mine = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, "dates") or {}
    # kubectl's reading of the same document, from the server's dry-run of its apply.
    manifest = Path(kube.kubeconfig).parent / f"dates-{namespace}.yaml"
    manifest.write_text(text)
    try:
        out = subprocess.run(
            [tools.find("kubectl"), "--kubeconfig", str(kube.kubeconfig), "apply", "--dry-run=server", "-o", "json",
             "-n", namespace, "-f", str(manifest)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        manifest.unlink()
    import json

    theirs = json.loads(out)
    assert mine["data"] == theirs["data"] == {
        "released": "2024-01-01", "at": "2024-01-01T10:00:00Z", "clock": "12:30", "flag": "yes",
    }  # fmt: skip
    assert mine["metadata"]["annotations"]["released"] == theirs["metadata"]["annotations"]["released"]


def test_two_processes_creating_the_key_at_once_agree_on_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = (
        "import sys; from pathlib import Path; from slipway.store import crypto; "
        "print(crypto.encrypt(Path(sys.argv[1]), b'x').decode())"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
             for _ in range(8)]  # fmt: skip
    tokens = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    store = Store(home=home)
    from slipway.store import crypto

    assert all(crypto.decrypt(home, t.encode()) == b"x" for t in tokens)  # every one used the same key
    assert (home / "secret.key").stat().st_mode & 0o777 == 0o600
    assert not [p for p in home.iterdir() if p.name.startswith(".secret.key")]
    store.close()


def test_every_sync_publishes_its_events(engine: Engine, make_git, namespace: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"), configmap("b"))})
    wf = add_workflow(engine, repo, namespace)
    seen: list[tuple[str, dict[str, Any]]] = []
    stop = engine.events.subscribe(lambda event, data: seen.append((event, data)))

    def broken(event: str, data: dict[str, Any]) -> None:
        raise RuntimeError("a watcher that breaks")

    engine.events.subscribe(broken)
    result = engine.sync(wf)
    stop()
    assert result.status == "succeeded"
    events = [e for e, _ in seen]
    assert events[0] == "started" and events[-1] == "finished"
    assert events.count("applied") == 2 and "stage" in events
    # "assessed" is the workflow's sync status and health, computed as the sync records itself: no sync's own
    assert all(d["workflow"] == wf and (e == "assessed" or d["sync_id"] == result.id) for e, d in seen)
    assert seen[-1][1]["status"] == "succeeded"
    engine.sync(wf)
    assert len([e for e, _ in seen if e == "started"]) == 1  # unsubscribed


def test_a_sync_to_a_cluster_that_cannot_be_reached_is_on_the_record(
    engine: Engine, make_git, namespace: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    repo = make_git({"k8s/a.yaml": dump(configmap("a"))})
    missing = tmp_path / "no-such.kubeconfig"
    wf = add_workflow(engine, repo, namespace, destination={"namespace": namespace, "kubeconfig": str(missing)})
    result = engine.sync(wf)
    assert result.status == "failed" and "does not exist" in result.message
    assert engine.history(wf)[0].id == result.id and engine.status(wf)["status"] == "failed"
