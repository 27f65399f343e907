"""When a Lease counts as renewed: from the moment the renewal was sent, never from its answer; and
an answer is waited for no longer than the renew deadline.

A replica whose answers come back late (a slow link back from the API server) must stop working
on a shard by its own renew deadline counted from when it *sent* the renewal: the others count
the lease duration from when they saw the renewal, which is sooner than the late answer. Timed
from the answer, the two overlapped.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.errors import KubeTransientError
from slipway.kube import Kube
from slipway.kube import leases as verbs
from slipway.kube.discovery import ResourceInfo
from slipway.kube.objects import Obj
from slipway.shards import ShardElector, shard_of

from .test_shards import FAST, wait_until

pytestmark = pytest.mark.cluster


class LateAnswers(Kube):
    """The real API server, whose answers to writes arrive ``late`` seconds after it acted on them."""

    late = 0.0

    def replace(self, info: ResourceInfo, obj: Obj, **kw: Any) -> Obj:
        written = super().replace(info, obj, **kw)
        time.sleep(self.late)
        return written


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that takes connections and never answers a byte."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield listener.getsockname()[1]


def test_a_renewal_counts_from_when_it_was_sent(kube: Kube, slipway_namespace: str, cluster: Any) -> None:
    slow = LateAnswers(cluster.kubeconfig)
    a = ShardElector(slow, slipway_namespace, 1, "replica-a", **FAST)
    b = ShardElector(kube, slipway_namespace, 1, "replica-b", **FAST)
    a.start()
    try:
        wait_until(lambda: a.held() == [0], 10)
        b.start()
        time.sleep(1)
        assert b.held() == []
        wid = next(w for w in (f"wf-{i}" for i in range(100)) if shard_of(w, 1) == 0)
        overlaps: list[float] = []
        slow.late = 2.5  # each answer now comes back later than the lease allows (3 s - 2 s deadline)
        started = time.monotonic()
        # At least 12 s of watching for an overlap, and until the other replica took the shard over (it
        # waits a lease duration of silence and a few rounds: longer on a busy machine).
        while time.monotonic() - started < 40:
            if a.owns(wid) and b.owns(wid):
                overlaps.append(time.monotonic() - started)
            if time.monotonic() - started > 12 and b.owns(wid):
                break
            time.sleep(0.01)
        assert not overlaps, f"two replicas worked on one shard at once, {overlaps[0]:.2f}s in"
        assert b.owns(wid), "nobody took the shard over from the replica whose renewals come too late"
    finally:
        a.stop(release=False)
        b.stop()


def test_a_renewal_waits_no_longer_than_the_deadline(
    kube: Kube, slipway_namespace: str, cluster: Any, tmp_path: Path, black_hole: int
) -> None:
    labels = {"app.kubernetes.io/managed-by": "slipway", "slipway.dev/lease": "shard"}
    held = verbs.acquire(kube, slipway_namespace, "slipway-shard-0", "a", 15, labels, None)
    doc = yaml.safe_load(cluster.kubeconfig.read_text())
    for c in doc["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{black_hole}"
    path = tmp_path / "black-hole.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    cut_off = Kube(path)  # the default timeout: 30 s
    t0 = time.monotonic()
    with pytest.raises(KubeTransientError):
        verbs.renew(cut_off, slipway_namespace, held, "a", 15, timeout=0.5)
    assert time.monotonic() - t0 < 3
