"""The shard election on the real API server's Leases: spread, hand-over, expiry, the renew deadline.

These run the elector in this process with short timings (a 3 s lease) so they take seconds; the
replicas of ``test_replicas.py`` run with the defaults (15 s, 10 s, 2 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.kube import Kube
from slipway.kube import leases as verbs
from slipway.kube.client import KubeConflict
from slipway.shards import ShardElector, fair_share, shard_of
from tests.gitservers import free_port

pytestmark = pytest.mark.cluster

FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry": 0.3}


def wait_until(check: Callable[[], Any], timeout: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"not true after {timeout}s: {check}")


@pytest.fixture
def electors(kube: Kube, slipway_namespace: str) -> Iterator[Callable[..., ShardElector]]:
    made: list[ShardElector] = []

    def make(identity: str, shards: int = 4, k: Kube | None = None, **timing: float) -> ShardElector:
        e = ShardElector(k or kube, slipway_namespace, shards, identity, **{**FAST, **timing})
        made.append(e)
        e.start()
        return e

    yield make
    for e in made:
        e.stop()


def test_the_lease_verbs_let_one_writer_win(kube: Kube, slipway_namespace: str) -> None:
    labels = {"app.kubernetes.io/managed-by": "slipway", "slipway.dev/lease": "shard"}
    first = verbs.acquire(kube, slipway_namespace, "slipway-shard-0", "a", 15, labels, None)
    assert first.holder == "a" and first.transitions == 0
    taken = verbs.acquire(kube, slipway_namespace, "slipway-shard-0", "b", 15, labels, first)
    assert taken.holder == "b" and taken.transitions == 1
    with pytest.raises(KubeConflict):  # a's view is old: its write must lose
        verbs.renew(kube, slipway_namespace, first, "a", 15)
    released = verbs.release(kube, slipway_namespace, taken)
    assert released.holder == "" and released.duration == 1


def test_replicas_spread_the_shards_and_a_stopping_one_hands_them_over(electors: Callable[..., ShardElector]) -> None:
    a = electors("replica-a")
    wait_until(lambda: a.held() == [0, 1, 2, 3], 10)
    b = electors("replica-b")
    took = wait_until(lambda: len(a.held()) == 2 and len(b.held()) == 2, 15)
    assert sorted(a.held() + b.held()) == [0, 1, 2, 3], f"spread in {took:.1f}s"
    c = electors("replica-c")
    wait_until(lambda: sorted(len(e.held()) for e in (a, b, c)) == [1, 1, 2], 15)
    a.stop()
    took = wait_until(lambda: sorted(b.held() + c.held()) == [0, 1, 2, 3], 10)
    assert took < 3.0, f"a stopping replica's shards were taken over after {took:.1f}s"
    assert sorted(len(e.held()) for e in (b, c)) == [2, 2]


def test_a_dead_replica_loses_its_shards_after_the_lease_duration(electors: Callable[..., ShardElector]) -> None:
    a = electors("replica-a", shards=2)
    wait_until(lambda: a.held() == [0, 1], 10)
    b = electors("replica-b", shards=2)
    wait_until(lambda: len(b.held()) == 1, 15)
    a.stop(release=False)  # as kill -9: nothing given back
    died = time.monotonic()
    wait_until(lambda: b.held() == [0, 1], 15)
    took = time.monotonic() - died
    assert FAST["lease_duration"] - 1 <= took <= FAST["lease_duration"] + 3, f"taken over after {took:.1f}s"


def _unreachable(kubeconfig: Path, tmp_path: Path) -> Kube:
    """The same cluster's credentials, aimed at a port nothing listens on: a replica cut off."""
    doc = yaml.safe_load(kubeconfig.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "cut-off.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return Kube(path, timeout=0.5)


def test_a_replica_cut_off_stops_working_before_another_may_start(
    electors: Callable[..., ShardElector], kube: Kube, cluster: Any, tmp_path: Path
) -> None:
    a = electors("replica-a", shards=1)
    wait_until(lambda: a.held() == [0], 10)
    b = electors("replica-b", shards=1)
    time.sleep(1)
    assert b.held() == []
    wid = next(w for w in (f"wf-{i}" for i in range(100)) if shard_of(w, 1) == 0)
    overlaps: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if a.owns(wid) and b.owns(wid):
                overlaps.append(time.monotonic())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    a.kube = _unreachable(cluster.kubeconfig, tmp_path)
    cut = time.monotonic()
    try:
        lost = wait_until(lambda: not a.owns(wid), 10)
        assert lost <= FAST["renew_deadline"] + 0.5
        taken = wait_until(lambda: b.owns(wid), 15)
        assert time.monotonic() - cut >= FAST["lease_duration"] - 0.5  # not before the lease ran out
        assert not overlaps, "two replicas worked on one shard at once"
        del taken
    finally:
        stop.set()
        watcher.join()
        a.stop(release=False)


def test_fair_shares_add_up_and_shards_are_stable() -> None:
    for shards in (1, 3, 6, 7):
        for members in (["a"], ["a", "b"], ["c", "a", "b"], ["a", "b", "c", "d", "e", "f", "g", "h"]):
            shares = [fair_share(shards, members, m) for m in members]
            assert sum(shares) == shards and max(shares) - min(shares) <= 1
    assert shard_of("web", 6) == shard_of("web", 6) == 3  # fixed across processes and releases
    counts = [0] * 6
    for i in range(6000):
        counts[shard_of(f"wf-{i:04d}", 6)] += 1
    assert min(counts) > 900, counts
