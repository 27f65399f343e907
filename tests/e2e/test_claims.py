"""A sync's claim outlives no holder: a real ``slipway sync`` on "another machine" killed mid-sync, a
holder whose clock is far off, a holder that renews, and ``slipway workflow unlock``.

"Another machine" is a ``slipway sync`` in a UTS namespace of its own (``unshare --uts``) with a
host name of its own: the pid check of a claim made on this host cannot answer for it, so only the
claim's liveness can. The claim Lease's duration is shortened through the environment
(``SLIPWAY_CLAIM_LEASE_DURATION``) so the tests take seconds; the judge uses the duration the
holder wrote, as client-go does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.errors import SyncInProgress
from slipway.kube import Kube
from slipway.kube import leases as verbs
from slipway.results import SyncResult
from slipway.store.kubernetes import KubernetesStore
from slipway.store.kubernetes.names import WORKFLOWS, kname
from tests.gitservers import make_repo, origin_of
from tests.manifests import configmap, dump

from .conftest import BOTH_BACKENDS, Cli

LEASE = 2  # seconds: the claim Lease of the syncs these tests start (the default is 15)
MARGIN = 12.0  # seconds on top of a lease duration: process start-up, Git, polling on a shared machine


def blocking_workflow(cli: Cli, tmp_path: Path, namespace: str) -> tuple[Path, Path]:
    """Workflow ``w`` whose pre-sync hook waits while ``block`` exists (saying so in ``started``)."""
    block, started = tmp_path / "block", tmp_path / "started"
    work = make_repo(tmp_path / "app", {"k8s/a.yaml": dump(configmap("a", {"v": "1"}))})
    hook = f'if [ -e {block} ]; then touch {started}; i=0; while [ -e {block} ] && [ $i -lt 900 ]; do sleep 0.2; i=$((i+1)); done; fi'  # fmt: skip
    for args in (["repo", "add", str(origin_of(work)), "--id", "r"],
                 ["workflow", "create", "--id", "w", "--repository", "r", "--path", "k8s", "--namespace", namespace,
                  "--no-health", "--pre-hook", hook]):  # fmt: skip
        r = cli(*args)
        assert r.returncode == 0, r.stdout + r.stderr
    return block, started


def sync_elsewhere(cli: Cli, log: Path, host: str = "another-machine") -> subprocess.Popen[bytes]:
    """``slipway sync w`` as a process of another machine: a host name of its own, its own session."""
    assert shutil.which("unshare"), "these tests need unshare(1) to give a process a host name of its own"
    env = {**cli.env, "SLIPWAY_CLAIM_LEASE_DURATION": str(LEASE)}
    argv = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh",
            sys.executable, "-m", "slipway", "sync", "w", "--yes"]  # fmt: skip
    return subprocess.Popen(argv, env=env, cwd=cli.cwd, stdin=subprocess.DEVNULL, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


def history(cli: Cli) -> list[dict[str, Any]]:
    r = cli("-o", "json", "history", "w")
    assert r.returncode == 0, r.stderr
    return list(json.loads(r.stdout))


@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
@pytest.mark.cluster
def test_a_killed_sync_of_another_machine_is_recovered_by_observation(
    cli: Cli, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    block, started = blocking_workflow(cli, tmp_path, namespace)
    block.touch()
    log = tmp_path / "elsewhere.log"
    proc = sync_elsewhere(cli, log)
    try:
        wait_for(started.exists, 60, f"the sync of another machine to reach its hook ({log.read_text()})")
        state = cli.engine().store.workflow_state("w")
        assert str(state["sync_owner"]).startswith("another-machine:"), state
        dead_sync = state["sync_id"]

        # Alive and renewing: never taken, however long we look (three lease durations and more).
        t0 = time.monotonic()
        r = cli("sync", "w", "--yes")
        assert r.returncode != 0 and "sync in progress" in r.stdout + r.stderr, r.stdout + r.stderr
        assert time.monotonic() - t0 < LEASE + MARGIN
        time.sleep(3 * LEASE)
        r = cli("sync", "w", "--yes")
        assert r.returncode != 0 and "sync in progress" in r.stdout + r.stderr, r.stdout + r.stderr
        assert proc.poll() is None, log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the whole sync, mid-hook
        proc.wait()
    killed = time.monotonic()
    block.unlink()  # the hook's shell, orphaned, ends too

    # Within a lease duration (and the start of a process), a new sync holds the workflow.
    r = cli("sync", "w", "--yes")
    took = time.monotonic() - killed
    assert r.returncode == 0, r.stdout + r.stderr
    assert took < LEASE + MARGIN, f"the dead claim was recovered {took:.1f}s after the kill"
    rows = {h["id"]: h for h in history(cli)}
    assert rows[dead_sync]["status"] == "interrupted", rows[dead_sync]
    assert rows[dead_sync]["end_time"]
    assert [h["status"] for h in history(cli)][:2] == ["succeeded", "interrupted"]
    assert cli.engine().store.workflow_state("w")["sync_owner"] is None
    left = verbs.list_leases(kube, cli.env["SLIPWAY_NAMESPACE"], "slipway.dev/lease=claim")
    assert left == [], left  # the dead claim's Lease went with it; the new sync's with its release


# -- a holder's clock is never compared with ours -------------------------------------------------------


@pytest.fixture
def kstore(cli: Cli, tmp_path: Path, namespace: str) -> Iterator[KubernetesStore]:
    blocking_workflow(cli, tmp_path, namespace)
    store = cli.engine().store
    assert isinstance(store, KubernetesStore)
    yield store


def far_lease(kube: Kube, namespace: str, name: str, holder: str, renew: dt.datetime) -> verbs.LeaseRecord:
    labels = {"app.kubernetes.io/managed-by": "slipway", "slipway.dev/lease": "claim"}
    record = verbs.acquire(kube, namespace, name, holder, 1, labels, verbs.get(kube, namespace, name))
    return write_renew(kube, namespace, record, renew)


def write_renew(kube: Kube, namespace: str, record: verbs.LeaseRecord, renew: dt.datetime) -> verbs.LeaseRecord:
    """Renew as a holder whose clock says ``renew``: the record changes, its time is far off ours."""
    obj = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": record.name, "namespace": namespace, "labels": dict(record.labels),
                     "resourceVersion": record.resource_version},
        "spec": {"holderIdentity": record.holder, "leaseDurationSeconds": 1, "acquireTime": verbs.micro_time(renew),
                 "renewTime": verbs.micro_time(renew), "leaseTransitions": 0},
    }  # fmt: skip
    return verbs.LeaseRecord.of(kube.replace(verbs.LEASES, obj))


def foreign_claim(
    store: KubernetesStore, lease: str | None, holder: str = "far-replica", workflow_id: str = "w"
) -> str:
    """A claim by another machine's process, with its running record, as such a process leaves it."""
    result = SyncResult(id="sync-far-" + os.urandom(3).hex(), workflow_id=workflow_id, status="running",
                        start_time=verbs.micro_time(), commit_hash=None, message="")  # fmt: skip
    store.start_sync(result)
    obj = store.workflow_obj(workflow_id)
    claim = {
        "syncId": result.id,
        "owner": "another-machine:4242:777",
        "identity": holder,
        "since": "2026-01-01T00:00:00Z",
    }
    if lease:
        claim["lease"] = lease
    body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": {"claim": claim}}
    store.kube.patch_merge(WORKFLOWS, store.namespace, kname(workflow_id), body, subresource="status")
    return result.id


@pytest.mark.cluster
@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
def test_a_renewing_holder_whose_clock_is_years_behind_is_never_stolen_from(
    kstore: KubernetesStore, kube: Kube
) -> None:
    ns = kstore.namespace
    past = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    record = far_lease(kube, ns, "slipway-shard-0", "far-replica", past)
    foreign_claim(kstore, "slipway-shard-0")
    stop = threading.Event()

    def renew() -> None:  # every 0.2 s, always 25 years ago by its clock
        nonlocal record
        i = 0
        while not stop.wait(0.2):
            i += 1
            record = write_renew(kube, ns, record, past + dt.timedelta(milliseconds=i))

    t = threading.Thread(target=renew, daemon=True)
    t.start()
    try:
        for _ in range(3):  # looked at again and again, from a fresh store each time (a new process)
            fresh = KubernetesStore(namespace=ns)
            t0 = time.monotonic()
            with pytest.raises(SyncInProgress):
                fresh.claim("w", "sync-thief")
            assert time.monotonic() - t0 < 1 + MARGIN
        assert str(kstore.workflow_state("w")["sync_owner"]).startswith("another-machine:")
    finally:
        stop.set()
        t.join()


@pytest.mark.cluster
@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
def test_a_silent_holder_whose_clock_is_years_ahead_is_recovered_by_observation(
    kstore: KubernetesStore, kube: Kube
) -> None:
    ns = kstore.namespace
    far_lease(kube, ns, "slipway-shard-0", "far-replica", dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    dead = foreign_claim(kstore, "slipway-shard-0")
    t0 = time.monotonic()
    fresh = KubernetesStore(namespace=ns)
    fresh.claim("w", "sync-next")  # looks, sees no renewal for the Lease's duration, takes it
    assert time.monotonic() - t0 < 1 + MARGIN
    assert fresh.workflow_state("w")["sync_id"] == "sync-next"
    assert fresh.get_sync(dead).status == "interrupted"
    fresh.release("w", "sync-next")


# -- slipway workflow unlock ------------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("store_backend", ["kubernetes"], indirect=True)
def test_unlock_releases_a_claim_nobody_can_judge_in_every_output(cli: Cli, kstore: KubernetesStore) -> None:
    r = cli("workflow", "unlock", "w")
    assert r.returncode == 0 and "workflow w is not locked" in r.stdout, r.stdout + r.stderr

    dead = foreign_claim(kstore, None)  # no Lease: an earlier slipway's claim, nobody can tell it is gone
    r = cli("sync", "w", "--yes")
    assert r.returncode != 0 and "sync in progress" in r.stdout + r.stderr
    r = cli("workflow", "unlock", "w")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"workflow w unlocked: sync {dead} (pid 4242 of far-replica) recorded as interrupted" in r.stdout
    assert kstore.get_sync(dead).status == "interrupted"
    assert "workflow unlock" in kstore.get_sync(dead).message

    dead = foreign_claim(kstore, None)
    r = cli("-o", "json", "workflow", "unlock", "w")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "workflow": "w",
        "unlocked": True,
        "sync_id": dead,
        "holder": "pid 4242 of far-replica",
    }
    dead = foreign_claim(kstore, None)
    r = cli("-o", "yaml", "workflow", "unlock", "w")
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout) == {"workflow": "w", "unlocked": True, "sync_id": dead,
                                        "holder": "pid 4242 of far-replica"}  # fmt: skip
    r = cli("-o", "json", "workflow", "unlock", "w")
    assert json.loads(r.stdout) == {"workflow": "w", "unlocked": False, "sync_id": None, "holder": None}
    r = cli("sync", "w", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("workflow", "unlock", "nope")
    assert r.returncode != 0 and "nope" in r.stderr and "Traceback" not in r.stderr


@BOTH_BACKENDS
@pytest.mark.cluster
def test_unlock_refuses_a_holder_that_is_alive(cli: Cli, tmp_path: Path, namespace: str) -> None:
    block, started = blocking_workflow(cli, tmp_path, namespace)
    block.touch()
    proc = cli.popen("sync", "w", "--yes", log=tmp_path / "holder.log")
    try:
        wait_for(started.exists, 60, "the sync to reach its hook")
        r = cli("workflow", "unlock", "w")
        assert r.returncode != 0 and "alive" in r.stderr, r.stdout + r.stderr
        assert proc.poll() is None
    finally:
        block.unlink()
    assert proc.wait(60) == 0
    assert history(cli)[0]["status"] == "succeeded"


# -- SQLite: a claim by a dead process of this host --------------------------------------------------------


@pytest.mark.cluster
def test_sqlite_a_killed_sync_on_this_host_is_recovered_at_once(cli: Cli, tmp_path: Path, namespace: str) -> None:
    block, started = blocking_workflow(cli, tmp_path, namespace)
    block.touch()
    proc = cli.popen("sync", "w", "--yes", log=tmp_path / "holder.log")
    wait_for(started.exists, 60, "the sync to reach its hook")
    dead = cli.engine().store.workflow_state("w")["sync_id"]
    proc.kill()
    proc.wait()
    block.unlink()
    r = cli("sync", "w", "--yes")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {h["id"]: h["status"] for h in history(cli)}
    assert rows[dead] == "interrupted"

    # A claim of another machine's process (a shared file): only unlock takes it.
    db = sqlite3.connect(cli.home / "state.db")
    with db:
        db.execute("UPDATE workflows SET sync_owner = 'another-machine:4242:777', sync_id = 'sync-far' WHERE id = 'w'")
    db.close()
    r = cli("sync", "w", "--yes")
    assert r.returncode != 0 and "sync in progress" in r.stdout + r.stderr
    r = cli("-o", "json", "workflow", "unlock", "w")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"workflow": "w", "unlocked": True, "sync_id": "sync-far",
                                    "holder": "pid 4242 of another-machine"}  # fmt: skip
    assert cli("sync", "w", "--yes").returncode == 0
