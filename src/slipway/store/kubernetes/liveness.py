"""Whether a claim's holder is alive: a Lease it renews, judged by what this process saw change.

A process that claims a workflow without a shard Lease (``slipway sync``, an API sync on
``server --no-controller``) holds a Lease of its own for the claim, ``slipway-claim-<sync id>``,
and renews it every ``duration * 2/15`` seconds (client-go's 2 s of 15) from a thread of its
store (:class:`Keeper`). The renewal time is taken before the write is sent, and a write is given
no longer than what is left to the renew deadline (``duration * 10/15``). A Lease found taken,
or not renewed by that deadline, is given up and the sync told (its :class:`~..protocol.ClaimLoss`
is set), as client-go's leader steps down: another process may hold the workflow by then.

Whether a Lease is still held is client-go's rule (:class:`Observer`): its record (holder,
times, transitions) is valid for its ``leaseDurationSeconds`` from the moment *this* process
first saw it as it is. A change seen is a renewal: alive. The same record seen unchanged for a
whole duration by our own monotonic clock: gone. The times written in the record are never
compared with our clock, so a holder whose clock is years off is judged like any other. A
process that has not looked long enough may wait and look again (``wait``), so a fresh
``slipway sync`` can tell a dead holder from a live one within one lease duration.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import ConfigError, KubeError, KubeNotFound
from ...kube import Kube
from ...kube import leases as verbs
from ...kube.client import KubeAlreadyExists, KubeConflict

if TYPE_CHECKING:
    from ..protocol import ClaimLoss

log = logging.getLogger("slipway.store")

CLAIM_PREFIX = "slipway-claim-"
LEASE_DURATION = 15.0
DURATION_VARIABLE = "SLIPWAY_CLAIM_LEASE_DURATION"


def lease_duration() -> int:
    """The duration a new claim's Lease is written with: SLIPWAY_CLAIM_LEASE_DURATION seconds, else 15."""
    text = os.environ.get(DURATION_VARIABLE)
    if not text:
        return int(LEASE_DURATION)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{DURATION_VARIABLE}: {text!r} is not a whole number of seconds, 1 or more")
    return value


def labels(workflow_id: str) -> dict[str, str]:
    from .names import LABEL_WORKFLOW

    return {"app.kubernetes.io/managed-by": "slipway", "slipway.dev/lease": "claim", LABEL_WORKFLOW: workflow_id}


@dataclass
class _Held:
    record: verbs.LeaseRecord
    renewed: float  # monotonic time the last successful renewal was sent
    lost: ClaimLoss | None = None  # the sync's: set when the Lease is taken or its renew deadline passes


def _deadline(record: verbs.LeaseRecord) -> float:
    """Seconds after a renewal was sent within which the next must succeed (client-go's 10/15)."""
    return record.duration * 10 / 15


class Keeper:
    """Renews the claim Leases this process holds, from one thread, until they are dropped."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def create(self, name: str, holder: str, workflow_id: str, lost: ClaimLoss | None = None) -> verbs.LeaseRecord:
        """Create the claim's Lease and keep it renewed from now on; ``lost`` is set (and the Lease no
        longer renewed) once it is taken, or not renewed within its renew deadline: another process
        may hold the workflow by then, so the sync must change nothing more."""
        sent = time.monotonic()
        duration, marks = lease_duration(), labels(workflow_id)
        try:
            record = verbs.acquire(self.kube, self.namespace, name, holder, duration, marks, None)
        except KubeAlreadyExists:  # left by an earlier try of this very sync (its deletion failed)
            current = verbs.get(self.kube, self.namespace, name)
            record = verbs.acquire(self.kube, self.namespace, name, holder, duration, marks, current)
        if lost is not None:
            lost.probe = lambda: self._stale(name)
        with self._lock:
            self._held[name] = _Held(record, sent, lost)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="slipway-claims", daemon=True)
                self._thread.start()
        return record

    def drop(self, name: str) -> None:
        """Stop renewing it and delete it (the claim is released, or was never written)."""
        with self._lock:
            held = self._held.pop(name, None)
        if held is None:
            return
        try:
            self.kube.delete(verbs.LEASES, self.namespace, name)
        except KubeError as e:
            log.warning("claim Lease %s: could not delete it (%s); it expires on its own", name, e)

    def _stale(self, name: str) -> str | None:
        """Why the claim ``name`` is not surely held now (None while it is): read without a request."""
        with self._lock:
            held = self._held.get(name)
        if held is None:
            return "its claim Lease was taken from this process (recovered or unlocked)"
        if time.monotonic() - held.renewed >= _deadline(held.record):
            return f"its claim Lease was not renewed within {_deadline(held.record):.3g}s"
        return None

    def _lose(self, name: str, held: _Held, reason: str) -> None:
        with self._lock:
            self._held.pop(name, None)
        if held.lost is not None:
            held.lost.lose(reason)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
                period = min(h.record.duration for h in self._held.values()) * 2 / 15
            self._wake.wait(max(0.1, period))
            with self._lock:
                items = list(self._held.items())
            for name, held in items:
                self._renew(name, held)

    def _renew(self, name: str, held: _Held) -> None:
        duration = held.record.duration
        deadline = _deadline(held.record)
        sent = time.monotonic()
        left = held.renewed + deadline - sent
        try:
            if left <= 0:
                raise KubeError("its renew deadline passed before a renewal could be sent")
            record = verbs.renew(self.kube, self.namespace, held.record, held.record.holder, duration, timeout=left)
        except (KubeConflict, KubeNotFound):
            with self._lock:
                gone = self._held.get(name) is held
            if gone:
                log.warning("claim Lease %s was taken from this process (recovered or unlocked): its sync no "
                            "longer holds the workflow and stops", name)  # fmt: skip
                self._lose(name, held, "its claim Lease was taken from this process (recovered or unlocked)")
            return
        except KubeError as e:
            if time.monotonic() - held.renewed >= deadline:
                log.error("claim Lease %s not renewed for %.3gs (%s): another process may take the workflow; its "
                          "sync stops", name, deadline, e)  # fmt: skip
                self._lose(name, held, f"its claim Lease was not renewed within {deadline:.3g}s ({e})")
            return
        with self._lock:
            if name in self._held:
                self._held[name] = _Held(record, sent, held.lost)


class Observer:
    """Judges Leases other processes hold by what this process saw of them (client-go's rule)."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self._seen: dict[str, tuple[tuple[object, ...], float]] = {}
        self._lock = threading.Lock()

    def alive(self, name: str, holder: str, *, wait: bool) -> bool:
        """Whether ``holder`` still holds Lease ``name``. Without ``wait``, a record not yet watched
        for its whole duration counts as held; with it, we look again until it changes (alive) or
        has not for its duration (gone)."""
        while True:
            record = verbs.get(self.kube, self.namespace, name)
            now = time.monotonic()
            if record is None or record.holder != holder:
                with self._lock:
                    self._seen.pop(name, None)
                return False
            duration = max(record.duration, 1)
            with self._lock:
                if len(self._seen) > 1000:  # Leases of claims long released that we never looked at again
                    self._seen = {k: v for k, v in self._seen.items() if now - v[1] < 3600}
                seen = self._seen.get(name)
                if seen is None or seen[0] != record.observed:
                    self._seen[name] = (record.observed, now)
                    if seen is not None:
                        return True  # renewed since we last looked
                    since = now
                else:
                    since = seen[1]
            if now - since >= duration:
                return False  # the same record for a whole duration, by our own clock
            if not wait:
                return True
            time.sleep(min(max(duration / 10, 0.1), 1.0, since + duration - now + 0.01))

    def forget(self, name: str) -> None:
        with self._lock:
            self._seen.pop(name, None)


__all__ = ["CLAIM_PREFIX", "Keeper", "Observer", "lease_duration"]
