"""Fresh namespaces for each run, and deleting them again (best effort: the cluster is shared).

Every namespace the bench makes is named ``bench-<phase>-<run id>-...`` and labelled
``slipway.dev/bench=<run id>``, so a leftover is easy to recognise; the bench only ever deletes
the namespaces it made in the same process.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from slipway.errors import SlipwayError
from slipway.kube import Kube

log = logging.getLogger("bench")

LABEL = "slipway.dev/bench"


def run_id() -> str:
    return secrets.token_hex(3)


class Namespaces:
    """The namespaces one bench process made; :meth:`delete_all` removes those still there."""

    def __init__(self, kube: Kube, run: str) -> None:
        self.kube = kube
        self.run = run
        self.made: list[str] = []
        self._info = kube.discovery.lookup("v1", "Namespace")

    def create(self, names: Iterable[str]) -> list[str]:
        names = list(names)

        def one(name: str) -> None:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {LABEL: self.run}}}
            self.kube.apply(self._info, body, field_manager="slipway-bench")

        self.made += names
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, names))
        return names

    def delete(self, names: Iterable[str], wait: float = 0.0) -> float:
        """Delete ``names``; with ``wait``, until they are gone or ``wait`` seconds pass. Seconds waited."""
        names = list(names)
        self.made = [n for n in self.made if n not in names]

        def one(name: str) -> None:
            try:
                self.kube.delete(self._info, "", name)
            except SlipwayError as e:
                log.warning("could not delete namespace %s: %s", name, e)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, names))
        started = time.monotonic()
        if wait > 0:
            self.wait_gone(names, wait)
        return time.monotonic() - started

    def wait_gone(self, names: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending and time.monotonic() < deadline:
            live = {
                (o.get("metadata") or {}).get("name")
                for o in self.kube.list(self._info, None, label_selector=f"{LABEL}={self.run}")
            }
            pending &= live
            if pending:
                time.sleep(1.0)
        if pending:
            log.warning("%d namespace(s) still terminating after %.0fs", len(pending), timeout)
        return not pending

    def delete_all(self, wait: float = 0.0) -> None:
        if self.made:
            self.delete(self.made, wait)
            self.made = []


def wait_deployments_settled(kube: Kube, namespaces: list[str], timeout: float = 600.0, every: float = 1.0) -> bool:
    """Until every Deployment in ``namespaces`` is observed and available (one LIST per namespace every
    ``every`` seconds): the controllers are done with them."""
    info = kube.discovery.lookup("apps/v1", "Deployment")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = 0
        for ns in namespaces:
            for d in kube.list(info, ns):
                md, st = d.get("metadata") or {}, d.get("status") or {}
                want = (d.get("spec") or {}).get("replicas", 1)
                if st.get("observedGeneration", 0) < md.get("generation", 1) or st.get("availableReplicas", 0) < want:
                    busy += 1
        if not busy:
            return True
        time.sleep(every)
    return False


__all__ = ["LABEL", "Namespaces", "run_id", "wait_deployments_settled"]
