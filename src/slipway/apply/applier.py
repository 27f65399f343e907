"""Apply and prune: server-side apply in the order of one table, with retries and bounded concurrency.

Within a sync wave, tier 0 (Namespaces, CRDs) is applied first and waited for — namespaces
Active, CRDs Established — and discovery is refreshed so the custom resources planned against a
CRD of the same render can be applied. Then every rank of the order table in turn, the objects of
one rank concurrently. The first rank with a failure stops the apply: later ranks may depend on
it. Pruning walks waves and the order backwards, deleting each object only if it is still the one
we saw (uid precondition).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING

from .. import order
from ..errors import Cancelled, SlipwayError, describe
from ..items import Item
from ..kube import Obj, ObjectRef
from ..kube.objects import conditions
from ..model import RetryPolicy
from ..plan import mask
from ..retry import with_retry
from ..store.protocol import ClaimLoss

if TYPE_CHECKING:
    from ..kube import Kube

log = logging.getLogger("slipway.apply")

Progress = Callable[[str, dict[str, object]], None]


@dataclass
class ApplyOutcome:
    applied: list[Item] = field(default_factory=list)
    deleted: list[Item] = field(default_factory=list)
    failed: list[tuple[Item, str]] = field(default_factory=list)
    retries: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


class Applier:
    def __init__(
        self,
        kube: Kube,
        retry: RetryPolicy,
        *,
        concurrency: int = 16,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        on_applied: Callable[[list[Item]], None] | None = None,
    ) -> None:
        self.kube = kube
        self.retry = retry
        self.concurrency = concurrency
        self.cancel = cancel or threading.Event()
        self.progress = progress or (lambda event, data: None)
        self.on_applied = on_applied or (lambda items: None)
        self._retries = [0]

    # -- apply -------------------------------------------------------------------------------------

    def apply(self, items: list[Item], out: ApplyOutcome | None = None) -> ApplyOutcome:
        """Apply what is to be created or updated, tier by tier and rank by rank (one sync wave's worth);
        ``out`` collects across the waves of one sync."""
        out = out if out is not None else ApplyOutcome()
        todo = sorted((it for it in items if it.action in ("create", "update")), key=Item.sort_key)
        for tier, in_tier in groupby(todo, key=lambda it: (it.wave, order.tier(it.ref.kind))):
            batch = list(in_tier)
            if tier[1] > 0:
                self._resolve_pending(batch)
            for _, in_rank in groupby(batch, key=lambda it: order.rank(it.ref.kind)):
                self._check_cancel()
                rank = list(in_rank)
                self._apply_rank(rank, out)
                if not out.ok:
                    out.retries = self._retries[0]
                    return out
            if tier[1] == 0:
                self._settle_first_tier([it for it in batch if it in out.applied])
        out.retries = self._retries[0]
        return out

    def _apply_rank(self, rank: list[Item], out: ApplyOutcome) -> None:
        def one(it: Item) -> tuple[Item, str | None]:
            try:
                if it.recreate:
                    self._recreate(it)
                assert it.info is not None and it.desired is not None
                it.returned = with_retry(
                    lambda: self.kube.apply(it.info, it.desired, force=True),  # type: ignore[arg-type]
                    self.retry,
                    what=f"apply {it.ref}",
                    cancel=self.cancel,
                    counter=self._retries,
                )
                self.progress("applied", {"resource": it.ref.resource, "namespace": it.namespace, "action": it.action})
                return it, None
            except SlipwayError as e:
                return it, mask.scrub(describe(e), [it.desired])

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(rank))) as pool:
            results = list(pool.map(one, rank))
        done = [it for it, err in results if err is None]
        out.applied += done
        if done:
            self.on_applied(done)
        for it, err in results:
            if err is not None:
                log.warning("%s", err)
                out.failed.append((it, err))

    def _recreate(self, it: Item) -> None:
        assert it.info is not None and it.live is not None
        uid = (it.live.get("metadata") or {}).get("uid")
        self.kube.delete(it.info, it.ref.namespace, it.ref.name, uid=uid, propagation="Foreground")
        self._wait_until(
            f"{it.ref} to be deleted before it is created again",
            lambda: self.kube.get(it.info, it.ref.namespace, it.ref.name) is None,  # type: ignore[arg-type]
            120,
        )

    def _resolve_pending(self, batch: list[Item]) -> None:
        """Objects planned against a CRD of this render: their kind is served now."""
        for it in batch:
            if it.info is None or not it.pending:
                continue
            found = self.kube.discovery.find(it.api_version, it.ref.kind)
            if found is not None:
                it.info = found

    def _settle_first_tier(self, applied: list[Item]) -> None:
        """Namespaces must be Active and CRDs Established before anything uses them."""
        if not applied:
            return
        crds = [it for it in applied if it.ref.kind == "CustomResourceDefinition"]

        def ready(it: Item) -> bool:
            assert it.info is not None
            obj = self.kube.get(it.info, it.ref.namespace, it.ref.name)
            if obj is None:
                return False
            if it.ref.kind == "Namespace":
                return (obj.get("status") or {}).get("phase") == "Active"
            return conditions(obj).get("Established", {}).get("status") == "True"

        pending = list(applied)

        def settled() -> bool:
            pending[:] = [it for it in pending if not ready(it)]
            return not pending

        self.progress("waiting", {"what": "namespaces and CRDs", "count": len(applied)})
        self._wait_until("namespaces to be Active and CRDs Established", settled, 60)
        if crds:
            with_retry(self.kube.discovery.refresh, self.retry, what="discover API", cancel=self.cancel)

    def _wait_until(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.1
        while not check():
            if time.monotonic() > deadline:
                raise SlipwayError(f"timed out after {timeout:.0f}s waiting for {what}")
            if self.cancel.wait(delay):
                raise Cancelled(f"cancelled while waiting for {what}")
            delay = min(1.0, delay * 2)

    def _check_cancel(self) -> None:
        # A sync's cancel also knows whether its claim is still held: asked before each rank it writes.
        if self.cancel.is_set() or (isinstance(self.cancel, ClaimLoss) and self.cancel.lost()):
            raise Cancelled("cancelled")

    # -- prune -------------------------------------------------------------------------------------

    def prune(self, items: list[Item], out: ApplyOutcome) -> None:
        todo = sorted(items, key=Item.sort_key, reverse=True)
        for _, in_rank in groupby(todo, key=lambda it: (it.wave, order.tier(it.ref.kind), order.rank(it.ref.kind))):
            self._check_cancel()
            rank = list(in_rank)

            def one(it: Item) -> tuple[Item, str | None]:
                assert it.info is not None
                uid = ((it.live or {}).get("metadata") or {}).get("uid")
                try:
                    with_retry(
                        lambda: self.kube.delete(it.info, it.ref.namespace, it.ref.name, uid=uid),  # type: ignore[arg-type]
                        self.retry,
                        what=f"delete {it.ref}",
                        cancel=self.cancel,
                        counter=self._retries,
                    )
                    self.progress("deleted", {"resource": it.ref.resource, "namespace": it.namespace})
                    return it, None
                except SlipwayError as e:
                    return it, describe(e)

            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(rank))) as pool:
                for it, err in pool.map(one, rank):
                    if err is None:
                        out.deleted.append(it)
                    else:
                        out.failed.append((it, err))
            if not out.ok:
                break
        out.retries = self._retries[0]


def restore_object(obj: Obj) -> Obj:
    """A backed-up live object as something to apply again: the server's bookkeeping removed."""
    from ..plan.normalize import normalize

    out = normalize(obj)
    md = out.get("metadata") or {}
    for key in ("ownerReferences", "finalizers"):
        md.pop(key, None)
    return out


__all__ = ["Applier", "ApplyOutcome", "ObjectRef", "restore_object"]
