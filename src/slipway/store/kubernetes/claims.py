"""One sync per workflow at a time, across replicas: a claim written into the Workflow's status.

A claim is a write conditional on the resourceVersion the claimant read, so of two replicas
claiming at once exactly one wins, however their clocks or leases disagree. It names its owner
(host, pid and process start time), the replica's identity, and a Lease that proves the holder
alive: the shard Lease of a replica's elector, else a Lease of the claim's own that the holding
process renews (:mod:`.liveness`). A claim is recovered, and its running sync marked
``interrupted``, when its holder is gone: its process is dead on this host, or its Lease is
held by someone else, deleted, or seen unchanged for a whole lease duration by this process's
own clock (never by the time written in it), or it is an earlier run of this very replica. A
claim naming no Lease (written by an earlier slipway) cannot be judged from another machine:
``slipway workflow unlock`` releases it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from ...errors import KubeNotFound, NotFoundError, SlipwayError, SyncInProgress
from ...kube import Obj
from ...kube import leases as lease_verbs
from ...kube.client import KubeConflict
from ..sqlite.claims import _HOST, INTERRUPTED, UNLOCKED, owner_alive, owner_id
from . import names
from .base import Base, now_iso
from .liveness import CLAIM_PREFIX, Keeper, Observer
from .names import SECRETS, WORKFLOWS

if TYPE_CHECKING:
    from ..protocol import ClaimLoss

log = logging.getLogger("slipway.store")

INTERRUPTED_STATUS = "the last sync was interrupted"


class Claims(Base):
    _keeper: Keeper | None = None
    _observer: Observer | None = None

    @property
    def keeper(self) -> Keeper:
        if self._keeper is None:
            self._keeper = Keeper(self.kube, self.namespace)
        return self._keeper

    @property
    def observer(self) -> Observer:
        if self._observer is None:
            self._observer = Observer(self.kube, self.namespace)
        return self._observer

    def claim(self, workflow_id: str, sync_id: str, lost: ClaimLoss | None = None) -> None:
        """Claim the workflow for one sync or rollback; SyncInProgress when someone alive holds it.

        Without a shard Lease, the claim's own Lease is created first (so no one ever sees a claim
        naming a Lease not there yet) and dropped again if the claim is not won. A holder not yet
        watched for a whole lease duration is watched here until it renews or is found gone.
        ``lost`` is set when that Lease is found taken or not renewed within its renew deadline."""
        me = owner_id()
        lease = self.lease_for(workflow_id) or None
        own = None
        if lease is None:
            own = CLAIM_PREFIX + names.kname(sync_id)
            self.keeper.create(own, me, workflow_id, lost)
        mine = {"syncId": sync_id, "owner": me, "identity": self.identity or _HOST, "lease": lease or own,
                "since": now_iso()}  # fmt: skip
        gone: dict[str, Any] = {}

        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any]:
            gone.clear()
            held = status.get("claim") or {}
            if held.get("owner"):
                if self.claim_alive(held, wait=True):
                    raise SyncInProgress(f"workflow {workflow_id}: sync in progress ({held.get('syncId')}, "
                                         f"{holder_of(held)})")  # fmt: skip
                gone.update(held)
            patch: dict[str, Any] = {"claim": {k: v for k, v in mine.items() if v is not None}}
            if gone:
                patch.update(status="failed", message=INTERRUPTED_STATUS)
            return patch

        try:
            self.update_status(workflow_id, mutate)
        except BaseException:
            if own is not None:
                self.keeper.drop(own)
            raise
        if gone:
            log.warning("workflow %s: sync %s was interrupted (its holder %s is gone)", workflow_id,
                        gone.get("syncId"), gone.get("identity") or gone.get("owner"))  # fmt: skip
            self._bury(gone)
        self._sweep(workflow_id, keep=own)

    def release(self, workflow_id: str, sync_id: str) -> None:
        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any] | None:
            held = status.get("claim") or {}
            return {"claim": None} if held.get("syncId") == sync_id else None

        try:
            with contextlib.suppress(NotFoundError):  # removed meanwhile (a cascading removal ends so)
                self.update_status(workflow_id, mutate)
        finally:
            self.keeper.drop(CLAIM_PREFIX + names.kname(sync_id))

    def claim_alive(self, claim: dict[str, Any], *, wait: bool = False, unjudged: bool = True) -> bool:
        """Whether the claim's holder is alive. Without ``wait`` a holder not watched long enough
        counts as alive; with it, its Lease is watched here for up to one lease duration. A claim
        nothing can judge (another machine's, with no Lease) counts as ``unjudged`` says."""
        owner = str(claim.get("owner") or "")
        if not owner:
            return False
        if owner.split(":", 1)[0] == _HOST:
            return owner_alive(owner)  # this machine: the process itself answers, exactly
        identity = claim.get("identity")
        if identity and identity == self.identity and owner != owner_id():
            return False  # an earlier run of this replica, on another machine (a rescheduled pod)
        lease = str(claim.get("lease") or "")
        if not lease:
            return unjudged  # no liveness to judge it by: only `slipway workflow unlock` takes it
        holder = owner if lease.startswith(CLAIM_PREFIX) else str(identity or "")
        return self.observer.alive(lease, holder, wait=wait)

    def unlock(self, workflow_id: str) -> dict[str, Any] | None:
        """Release the workflow's claim and record its sync interrupted, unless its holder is alive
        (SyncInProgress); the claim released, None when there was none."""
        released: dict[str, Any] = {}

        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any] | None:
            released.clear()
            held = status.get("claim") or {}
            if not held.get("owner"):
                return None
            if self.claim_alive(held, wait=True, unjudged=False):
                raise SyncInProgress(f"workflow {workflow_id}: its claim's holder is alive ({held.get('syncId')}, "
                                     f"{holder_of(held)}); cancel that sync or stop that process instead")  # fmt: skip
            released.update(held)
            return {"claim": None, "status": "failed", "message": INTERRUPTED_STATUS}

        self.update_status(workflow_id, mutate)
        if not released:
            return None
        log.warning("workflow %s: claim of sync %s (%s) released by unlock", workflow_id, released.get("syncId"),
                    holder_of(released))  # fmt: skip
        self._bury(released, UNLOCKED)
        return {"syncId": released.get("syncId"), "owner": released.get("owner"), "holder": holder_of(released)}

    def mine(self, workflow_id: str) -> bool:
        """Whether this process holds the workflow's claim now (or nobody does)."""
        claim = (self.workflow_obj(workflow_id).get("status") or {}).get("claim") or {}
        return not claim.get("owner") or claim.get("owner") == owner_id()

    def recover_interrupted(self) -> list[str]:
        """Release claims whose holder is gone and mark their syncs (and running syncs nobody
        claims whose process died here) interrupted; returns the syncs' ids."""
        out: list[str] = []
        claimed: set[str] = set()
        for obj in self.kube.list(WORKFLOWS, self.namespace):
            held = (obj.get("status") or {}).get("claim") or {}
            if not held.get("owner"):
                continue
            claimed.add(str(held.get("syncId")))
            if self.claim_alive(held):
                continue
            if self._drop_claim(obj, held):
                claimed.discard(str(held.get("syncId")))
                self._bury(held)
                if held.get("syncId"):
                    out.append(str(held["syncId"]))
        running = self.kube.list_metadata(
            SECRETS,
            self.namespace,
            label_selector=names.selector(**{names.LABEL_RECORD: "sync", names.LABEL_SYNC_STATUS: "running"}),
        )
        for item in running:
            meta = item["metadata"]
            sync_id = str((meta.get("labels") or {}).get(names.LABEL_SYNC) or "")
            owner = (meta.get("annotations") or {}).get(names.ANNOTATION_OWNER)
            here = bool(owner) and str(owner).split(":", 1)[0] == _HOST
            if sync_id and sync_id not in claimed and here and not owner_alive(owner):
                self.interrupt_record(sync_id)
                out.append(sync_id)
        return out

    def _bury(self, held: dict[str, Any], message: str | None = None) -> None:
        """What a claim taken from a gone holder leaves: its sync recorded interrupted, its own Lease deleted."""
        if held.get("syncId"):
            self.interrupt_record(str(held["syncId"]), message)
        lease = str(held.get("lease") or "")
        if lease.startswith(CLAIM_PREFIX):
            self.observer.forget(lease)
            with contextlib.suppress(SlipwayError):
                self.kube.delete(lease_verbs.LEASES, self.namespace, lease)

    def _sweep(self, workflow_id: str, keep: str | None) -> None:
        """Claim Leases of the workflow that no claim names (a process that died between creating
        its Lease and writing its claim, or lost the race): the claim is ours now, so none is in use."""
        try:
            leases = lease_verbs.list_leases(self.kube, self.namespace,
                                             names.selector(**{"slipway.dev/lease": "claim",
                                                               names.LABEL_WORKFLOW: workflow_id}))  # fmt: skip
            for record in leases:
                if record.name != keep:
                    self.kube.delete(lease_verbs.LEASES, self.namespace, record.name,
                                     resource_version=record.resource_version)  # fmt: skip
        except SlipwayError as e:
            log.debug("workflow %s: leftover claim Leases stay for now (%s)", workflow_id, e)

    def _drop_claim(self, obj: Obj, held: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        body = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": {"claim": None, "status": "failed", "message": INTERRUPTED_STATUS},
        }
        try:
            self.kube.patch_merge(WORKFLOWS, self.namespace, meta["name"], body, subresource="status")
        except (KubeConflict, KubeNotFound):
            return False  # someone else moved first
        except SlipwayError as e:
            log.warning("cannot release the stale claim on %s: %s", meta["name"], e)
            return False
        return True


def holder_of(claim: dict[str, Any]) -> str:
    """Who holds a claim, as a person reads it: ``pid 123 of replica-a``."""
    host, _, rest = str(claim.get("owner") or "").partition(":")
    pid = rest.partition(":")[0] or "?"
    return f"pid {pid} of {claim.get('identity') or host}"


__all__ = ["INTERRUPTED", "Claims", "holder_of"]
