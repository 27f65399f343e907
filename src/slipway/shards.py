"""Shards of the workflows, shared by replicas through Leases, as client-go's leader election does it.

Each workflow belongs to shard ``sha256(id) mod N``; shard *i* is the Lease ``slipway-shard-<i>``
in slipway's namespace. Every ``retry`` seconds a replica reads the Leases, renews the ones it
holds (a write conditional on their resourceVersion) and takes free or expired ones; a Lease is
expired when the record has not changed for its duration as *this* replica saw it (client-go's
rule: no one trusts another machine's clock). A holder that has not renewed for ``renew_deadline``
stops working on the shard at once, before anyone else can take it (``lease_duration`` > deadline).

Replicas find each other through member Leases (``slipway-member-<identity>``), renewed the same
way, and spread the shards evenly: sorted by identity, each wants N // M shards and the first
N % M one more. A replica over its share drains the extra shards (it stops starting syncs there
and waits for the running ones) and gives their Leases back, so a new replica gets work within
seconds; a replica under its share takes free ones; a shard left free for two rounds is taken by
anyone, whatever the shares say, so no shard goes unserved while views disagree. Stopping
releases every Lease at once; a replica killed loses its shards after the lease duration.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import KubeError, SlipwayError
from .kube import Kube
from .kube import leases as verbs
from .kube.client import KubeAlreadyExists, KubeConflict
from .kube.leases import LeaseRecord

log = logging.getLogger("slipway.shards")

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
SELECTOR = "app.kubernetes.io/managed-by=slipway,slipway.dev/lease"
SHARD_PREFIX = "slipway-shard-"
MEMBER_PREFIX = "slipway-member-"


def shard_of(workflow_id: str, shards: int) -> int:
    """The shard a workflow belongs to: stable across processes, machines and Python versions."""
    return int.from_bytes(hashlib.sha256(workflow_id.encode()).digest()[:8], "big") % shards


def default_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def fair_share(shards: int, members: list[str], identity: str) -> int:
    """How many shards ``identity`` should hold among ``members`` (sorted, so every replica agrees)."""
    ordered = sorted(set(members) | {identity})
    base, extra = divmod(shards, len(ordered))
    return base + (1 if ordered.index(identity) < extra else 0)


@dataclass
class _Held:
    record: LeaseRecord
    renewed: float  # monotonic time of the last successful write


class ShardElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        shards: int,
        identity: str | None = None,
        *,
        lease_duration: float = LEASE_DURATION,
        renew_deadline: float = RENEW_DEADLINE,
        retry: float = RETRY_PERIOD,
    ) -> None:
        if shards < 1:
            raise SlipwayError("--shards: must be 1 or more")
        if not renew_deadline < lease_duration:
            raise SlipwayError("the renew deadline must be shorter than the lease duration")
        self.kube = kube
        self.namespace = namespace
        self.shards = shards
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry = retry
        self.version = 0  # bumped whenever the shards this replica works on change
        self._held: dict[int, _Held] = {}
        self._draining: set[int] = set()
        self._observed: dict[str, tuple[tuple[object, ...], float]] = {}
        self._free_rounds: dict[int, int] = {}
        self._member: LeaseRecord | None = None
        self._rounds = 0
        self._next_expiry: float | None = None  # when the next Lease held by another runs out, as seen here
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy: Callable[[int], bool] = lambda shard: False
        from .store.kubernetes.names import kname

        self.member_lease = MEMBER_PREFIX + kname(self.identity)

    # -- what the controller asks ----------------------------------------------------------------------

    def shard_of(self, workflow_id: str) -> int:
        return shard_of(workflow_id, self.shards)

    def owns(self, workflow_id: str) -> bool:
        """Whether this replica works on the workflow now: it holds its shard, renewed within the deadline."""
        i = self.shard_of(workflow_id)
        with self._lock:
            held = self._held.get(i)
            return held is not None and i not in self._draining and self._fresh(held)

    def lease_for(self, workflow_id: str) -> str | None:
        """The Lease that proves this replica alive to a claim on the workflow (None when not ours)."""
        return lease_name(self.shard_of(workflow_id)) if self.owns(workflow_id) else None

    def held(self) -> list[int]:
        with self._lock:
            return sorted(i for i, h in self._held.items() if i not in self._draining and self._fresh(h))

    def _fresh(self, held: _Held) -> bool:
        return time.monotonic() - held.renewed < self.renew_deadline

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self, busy: Callable[[int], bool] | None = None) -> None:
        """Run the election in a thread; ``busy(shard)`` says a shard still has syncs running (drain waits)."""
        if busy is not None:
            self._busy = busy
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="slipway-shards", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop electing and, with ``release``, give back every Lease at once (SIGTERM's hand-over)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.retry + 30)
        if not release:
            return
        with self._lock:
            held, self._held = dict(self._held), {}
            self._draining.clear()
            self.version += 1
        for i, h in sorted(held.items()):
            self._give_back(i, h.record)
        member = self._member
        if member is not None:
            with contextlib.suppress(KubeError):
                self.kube.delete(verbs.LEASES, self.namespace, member.name, resource_version=member.resource_version)
        log.info("replica %s released shards %s", self.identity, sorted(held))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except SlipwayError as e:
                log.warning("shard election: %s", e)
            except Exception:
                log.exception("shard election: unexpected error")
            # A little jitter keeps replicas started together from writing in lockstep; a Lease about
            # to expire is looked at the moment it does, not up to a retry period later.
            wait = self.retry * random.uniform(0.9, 1.1)
            if self._next_expiry is not None:
                wait = min(wait, max(0.05, self._next_expiry - time.monotonic() + 0.05))
            self._stop.wait(wait)

    # -- one round ---------------------------------------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
        records = {r.name: r for r in verbs.list_leases(self.kube, self.namespace, SELECTOR)}
        for name, r in records.items():
            seen = self._observed.get(name)
            if seen is None or seen[0] != r.observed:
                self._observed[name] = (r.observed, now)
        self._renew_member(records.get(self.member_lease))
        self._renew_held(records, now)
        self._rounds += 1
        if self._rounds < 2:
            return  # one round to be seen and to see the others before taking anything
        members = [r.holder for n, r in records.items() if n.startswith(MEMBER_PREFIX) and self._alive(r, now)]
        target = fair_share(self.shards, members, self.identity)
        self._drain_extra(target)
        self._take_free(records, target, now)
        self._forget_dead_members(records, now)
        expiries = [self._observed[n][1] + max(r.duration, 1) for n, r in records.items()
                    if r.holder and r.holder != self.identity and self._alive(r, now) and n in self._observed]  # fmt: skip
        self._next_expiry = min(expiries) if expiries else None

    def _alive(self, r: LeaseRecord, now: float) -> bool:
        """Held by someone whose renewals we saw within the lease's duration."""
        if not r.holder:
            return False
        if r.holder == self.identity:
            return True
        seen = self._observed.get(r.name)
        return seen is not None and now - seen[1] < max(r.duration, 1)

    def _renew_member(self, current: LeaseRecord | None) -> None:
        labels = {"app.kubernetes.io/managed-by": "slipway", "slipway.dev/lease": "member"}
        try:
            if current is not None and current.holder == self.identity:
                self._member = verbs.renew(self.kube, self.namespace, current, self.identity, int(self.lease_duration))
            else:
                self._member = verbs.acquire(self.kube, self.namespace, self.member_lease, self.identity,
                                             int(self.lease_duration), labels, current)  # fmt: skip
        except (KubeConflict, KubeAlreadyExists):
            pass  # read again next round

    def _renew_held(self, records: dict[str, LeaseRecord], now: float) -> None:
        for i, held in list(self._held.items()):
            current = records.get(lease_name(i))
            if current is None or current.holder != self.identity:
                self._lose(i, "its Lease was taken or removed")
                continue
            # The Lease is ours from the moment the renewal is sent (the others time it from when they
            # see it, later), and an answer after the renew deadline is worth nothing: wait no longer.
            sent = time.monotonic()
            left = held.renewed + self.renew_deadline - sent
            try:
                if left <= 0:
                    raise KubeError("the renew deadline passed before the renewal could be sent")
                record = verbs.renew(self.kube, self.namespace, current, self.identity, int(self.lease_duration),
                                     timeout=left)  # fmt: skip
            except KubeError as e:
                if time.monotonic() - held.renewed >= self.renew_deadline:
                    self._lose(i, f"not renewed within {self.renew_deadline:g}s ({e})")
                continue
            with self._lock:
                self._held[i] = _Held(record, sent)
            self._observed[record.name] = (record.observed, sent)

    def _lose(self, shard: int, why: str) -> None:
        with self._lock:
            if self._held.pop(shard, None) is not None:
                self._draining.discard(shard)
                self.version += 1
        log.warning("replica %s lost shard %d: %s", self.identity, shard, why)

    def _drain_extra(self, target: int) -> None:
        with self._lock:
            keep = sorted(self._held)
            extra = len(keep) - target
            for i in reversed(keep):
                if extra <= 0:
                    break
                if i not in self._draining:
                    self._draining.add(i)
                    self.version += 1
                    log.info("replica %s hands shard %d over (share %d)", self.identity, i, target)
                extra -= 1
            draining = sorted(self._draining)
        for i in draining:
            if self._busy(i):
                continue  # syncs of the shard still run: they were cancelled, wait for them to record
            with self._lock:
                held = self._held.pop(i, None)
                self._draining.discard(i)
            if held is not None:
                self._give_back(i, held.record)

    def _give_back(self, shard: int, record: LeaseRecord) -> None:
        try:
            verbs.release(self.kube, self.namespace, record)
        except KubeError as e:
            log.warning("shard %d: could not give its Lease back (%s); it expires on its own", shard, e)

    def _take_free(self, records: dict[str, LeaseRecord], target: int, now: float) -> None:
        with self._lock:
            have = len(self._held)
        labels = {"app.kubernetes.io/managed-by": "slipway", "slipway.dev/lease": "shard",
                  "slipway.dev/shards": str(self.shards)}  # fmt: skip
        for i in range(self.shards):
            if i in self._held:
                continue
            current = records.get(lease_name(i))
            free = current is None or not self._alive(current, now)
            self._free_rounds[i] = self._free_rounds.get(i, 0) + 1 if free else 0
            if not free:
                if current is not None and dict(current.labels).get("slipway.dev/shards", str(self.shards)) != str(
                    self.shards
                ):
                    log.error("shard Lease %s was taken by a replica with another --shards; give them all the same",
                              current.name)  # fmt: skip
                continue
            orphaned = self._free_rounds[i] > 2  # nobody under their share took it: take it anyway
            if have >= target and not orphaned:
                continue
            sent = time.monotonic()  # held from when the write was sent, as a renewal is
            try:
                record = verbs.acquire(self.kube, self.namespace, lease_name(i), self.identity,
                                       int(self.lease_duration), labels, current)  # fmt: skip
            except (KubeConflict, KubeAlreadyExists):
                continue  # another replica was quicker
            with self._lock:
                self._held[i] = _Held(record, sent)
                self.version += 1
            self._observed[record.name] = (record.observed, sent)
            self._free_rounds[i] = 0
            have += 1
            log.info("replica %s took shard %d", self.identity, i)

    def _forget_dead_members(self, records: dict[str, LeaseRecord], now: float) -> None:
        """Member Leases of replicas long gone would otherwise pile up, one per restart."""
        for name, r in records.items():
            seen = self._observed.get(name)
            if not name.startswith(MEMBER_PREFIX) or r.holder == self.identity or seen is None:
                continue
            if now - seen[1] > 10 * max(r.duration, 1):
                with contextlib.suppress(KubeError):
                    self.kube.delete(verbs.LEASES, self.namespace, name, resource_version=r.resource_version)

    def snapshot(self) -> dict[str, str]:
        """Every shard Lease and its holder as this replica last saw them (for status and tests)."""
        records = {r.name: r for r in verbs.list_leases(self.kube, self.namespace, SELECTOR)}
        return {lease_name(i): records[lease_name(i)].holder if lease_name(i) in records else ""
                for i in range(self.shards)}  # fmt: skip


def lease_name(shard: int) -> str:
    return f"{SHARD_PREFIX}{shard}"


__all__ = ["ShardElector", "default_identity", "fair_share", "lease_name", "shard_of"]
