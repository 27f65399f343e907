"""Running resource hooks: each phase's hooks wave by wave, each run to its end, then its delete policy.

Within a phase, hooks go in ascending wave (``sync-wave`` / ``hook-weight``), then kind order, then
name; the hooks of one wave start together and are waited for together. Before a hook is created,
its earlier runs go (BeforeHookCreation, the default): a named hook's object, or every object a
``generateName`` hook made, found by the hook's identity label — each only when its marks prove it
is a run of that very hook (:func:`..plan.ownership.hook_run_of`), deleted with its uid as a
precondition. The plan already refused a hook whose name something else holds; this check again at
run time covers an object made in between, which fails the hook and is left as it is. A hook is done when it ran to its
end (a Job Complete, a Pod Succeeded, anything else healthy by its rule); one that fails or does
not finish within the hook timeout stops the phase, and the sync fails with its reason. Afterwards
HookSucceeded / HookFailed delete what succeeded / failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from typing import TYPE_CHECKING, Any

from .. import health
from ..errors import Cancelled, HookError, KubeError, KubeInvalid, SlipwayError, describe
from ..items import HookItem
from ..kube import Obj, ObjectRef
from ..model import RetryPolicy
from ..plan import hookcheck, mask, ownership
from ..plan.ownership import HOOK_LABEL
from ..retry import with_retry
from ..waves import BEFORE, FAILED, SUCCEEDED

if TYPE_CHECKING:
    from ..kube import Kube

log = logging.getLogger("slipway.apply")

Progress = Callable[[str, dict[str, Any]], None]


class HookRunner:
    def __init__(
        self,
        kube: Kube,
        retry: RetryPolicy,
        timeout: float,
        *,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
        concurrency: int = 8,
    ) -> None:
        self.kube = kube
        self.retry = retry
        self.timeout = timeout
        self.cancel = cancel or threading.Event()
        self.progress = progress or (lambda event, data: None)
        self.concurrency = concurrency
        self.records: list[dict[str, Any]] = []
        self.uids: dict[ObjectRef, str] = {}  # what each run created: only that object is deleted after it

    def run(self, phase: str, hooks: list[HookItem], wave: int | None = None) -> None:
        """Run ``phase``'s hooks (of one wave when given); HookError names the first that failed."""
        mine = sorted((h for h in hooks if phase in h.spec.phases and (wave is None or h.spec.wave == wave)),
                      key=HookItem.sort_key)  # fmt: skip
        for w, in_wave in groupby(mine, key=lambda h: h.spec.wave):
            batch = list(in_wave)
            if self.cancel.is_set():
                raise Cancelled(f"cancelled before the {phase} hooks of wave {w}")
            self.progress("hook", {"phase": phase, "wave": w, "hooks": [h.resource for h in batch]})
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch))) as pool:
                started = list(pool.map(lambda h: self._start(phase, h), batch))
            failure = self._wait(phase, [(h, ref, t0) for h, ref, t0 in started if ref is not None])
            failed = [r for r in self.records[-len(batch) :] if r["status"] != "Succeeded"]
            if failed or failure:
                first = failed[0] if failed else {"resource": "?", "message": failure}
                raise HookError(f"{phase} hook {first['resource']} failed: {first['message']}")

    # -- one hook ----------------------------------------------------------------------------------

    def _start(self, phase: str, h: HookItem) -> tuple[HookItem, ObjectRef | None, float]:
        started = time.monotonic()
        assert h.info is not None
        try:
            refused = hookcheck.cascade_refused(h)
            if refused:
                raise HookError(refused)
            obj = self._generate(h) if h.generate else self._replace(h)
        except SlipwayError as e:
            self._record(phase, h, h.ref, "Failed", mask.scrub(describe(e), [h.desired]), started)
            return h, None, started
        md = obj.get("metadata") or {}
        ref = ObjectRef(h.ref.group, h.ref.kind, h.ref.namespace, md.get("name") or h.ref.name)
        self.uids[ref] = str(md.get("uid") or "")
        return h, ref, started

    def _generate(self, h: HookItem) -> Obj:
        assert h.info is not None
        info = h.info
        if BEFORE in h.spec.delete_policies:
            earlier = self.kube.list(info, h.ref.namespace or None, label_selector=f"{HOOK_LABEL}={h.identity}")
            self._delete_earlier_runs(h, [o for o in earlier if ownership.hook_run_of(o, h.desired) is None])
        return with_retry(lambda: self.kube.create(info, h.desired), self.retry, what=f"create {h.resource}",
                          cancel=self.cancel)  # fmt: skip

    def _replace(self, h: HookItem) -> Obj:
        """A named hook: created, or its own earlier run replaced (deleted first, or applied over)."""
        assert h.info is not None
        info = h.info
        live = with_retry(lambda: self.kube.get(info, h.ref.namespace, h.ref.name), self.retry, what=f"get {h.ref}",
                          cancel=self.cancel)  # fmt: skip
        if live is not None:
            whose = ownership.hook_run_of(live, h.desired)
            if whose is not None:
                raise HookError(f"{h.ref} already exists and is {whose}: the hook does not replace it")
            if BEFORE not in h.spec.delete_policies:
                return with_retry(lambda: self.kube.apply(info, h.desired, force=True), self.retry,
                                  what=f"apply {h.resource}", cancel=self.cancel)  # fmt: skip
            self._delete_earlier_runs(h, [live])
        try:
            return with_retry(lambda: self.kube.create(info, h.desired), self.retry, what=f"create {h.resource}",
                              cancel=self.cancel)  # fmt: skip
        except KubeInvalid as e:
            if e.reason != "AlreadyExists":
                raise
            raise HookError(f"{h.ref} was created by someone else just before the hook: the hook does not replace "
                            "it") from None  # fmt: skip

    def _delete_earlier_runs(self, h: HookItem, earlier: list[Obj]) -> None:
        """Delete the runs the caller proved are this hook's own, each by its uid, and wait until they are gone."""
        assert h.info is not None
        gone: list[tuple[str, str]] = []
        for obj in sorted(earlier, key=lambda o: str((o.get("metadata") or {}).get("name"))):
            md = obj.get("metadata") or {}
            name, uid = str(md.get("name")), str(md.get("uid") or "")
            # Foreground: a Job's pods go with it, so the next run never meets the last one's.
            self.kube.delete(h.info, h.ref.namespace, name, uid=uid or None, propagation="Foreground")
            gone.append((name, uid))
        deadline = time.monotonic() + 120
        for name, uid in gone:
            while (left := self.kube.get(h.info, h.ref.namespace, name)) is not None and (
                (left.get("metadata") or {}).get("uid") == uid
            ):
                if time.monotonic() > deadline:
                    raise SlipwayError(f"{h.ref.kind}/{name}: the earlier run of the hook is still being deleted")
                if self.cancel.wait(0.2):
                    raise Cancelled("cancelled while deleting an earlier hook run")

    def _wait(self, phase: str, running: list[tuple[HookItem, ObjectRef, float]]) -> str | None:
        if not running:
            return None
        targets = [health.Target(ref, h.info) for h, ref, _ in running if h.info is not None]
        try:
            ok, states = health.wait(self.kube, targets, self.timeout, cancel=self.cancel,
                                     judge=health.hook_outcome, degraded_grace=0.0)  # fmt: skip
        except KubeError as e:
            ok, states = False, {}
            why = describe(e)
        else:
            why = ""
        for h, ref, started in running:
            state = states.get(ref)
            if state is not None and state.status == health.HEALTHY:
                self._record(phase, h, ref, "Succeeded", state.message, started)
            elif state is not None and state.status == health.DEGRADED:
                self._record(phase, h, ref, "Failed", state.message, started)
            else:
                waited = f"did not finish within {self.timeout:.0f}s"
                self._record(phase, h, ref, "Failed", f"{waited}: {state.message}" if state else why or waited, started)
        for h, ref, _ in running:
            self._after(h, ref)
        return None if ok else why or None

    def _after(self, h: HookItem, ref: ObjectRef) -> None:
        record = next(r for r in reversed(self.records) if r["resource"] == ref.resource and r["phase_item"] is h)
        policy = SUCCEEDED if record["status"] == "Succeeded" else FAILED
        if policy in h.spec.delete_policies and h.info is not None:
            try:
                self.kube.delete(h.info, ref.namespace, ref.name, uid=self.uids.get(ref) or None,
                                 propagation="Background")  # fmt: skip
            except KubeError as e:
                log.warning("hook %s: could not delete it after it ran: %s", ref, describe(e))

    def _record(self, phase: str, h: HookItem, ref: ObjectRef, status: str, message: str, started: float) -> None:
        self.records.append({
            "kind": "resource", "phase": phase, "resource": ref.resource, "namespace": ref.namespace or None,
            "wave": h.spec.wave, "status": status, "message": message,
            "duration": round(time.monotonic() - started, 3), "phase_item": h,
        })  # fmt: skip
        self.progress("hook-finished", {"phase": phase, "resource": ref.resource, "status": status})

    def results(self) -> list[dict[str, Any]]:
        """The records as a sync keeps them (without the runner's own bookkeeping)."""
        return [{k: v for k, v in r.items() if k != "phase_item"} for r in self.records]
