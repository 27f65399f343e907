"""One sync per workflow at a time, across replicas: a claim written into the Workflow's status.

A claim is a write conditional on the resourceVersion the claimant read, so of two replicas
claiming at once exactly one wins, however their clocks or leases disagree. It names its owner
(host, pid and process start time), the replica's identity, and — when a shard elector runs —
the shard Lease that proves the replica alive. A claim is recovered, and its running sync marked
``interrupted``, when its holder is gone: its process is dead on this host, or the Lease it named
is held by someone else or has long expired, or it is an earlier run of this very replica. A
claim from another machine with no Lease (a ``slipway sync`` run elsewhere) is never taken: we
cannot tell it is gone, exactly as the SQLite store cannot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

from ...errors import KubeNotFound, NotFoundError, SlipwayError, SyncInProgress
from ...kube import Obj
from ...kube import leases as lease_verbs
from ...kube.client import KubeConflict
from ..sqlite.claims import _HOST, INTERRUPTED, owner_alive, owner_id
from . import names
from .base import Base, now_iso
from .names import SECRETS, WORKFLOWS

log = logging.getLogger("slipway.store")

# A Lease not renewed for this many of its durations is taken as gone, even if nobody took it over.
EXPIRED_AFTER = 2.0


class Claims(Base):
    def claim(self, workflow_id: str, sync_id: str) -> None:
        """Claim the workflow for one sync or rollback; SyncInProgress when someone alive holds it."""
        mine = {
            "syncId": sync_id,
            "owner": owner_id(),
            "identity": self.identity or _HOST,
            "lease": self.lease_for(workflow_id) or None,
            "since": now_iso(),
        }
        gone: dict[str, Any] = {}

        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any]:
            gone.clear()
            held = status.get("claim") or {}
            if held.get("owner"):
                if self.claim_alive(held):
                    host, _, rest = str(held["owner"]).partition(":")
                    pid = rest.partition(":")[0] or "?"
                    raise SyncInProgress(
                        f"workflow {workflow_id}: sync in progress ({held.get('syncId')}, pid {pid} "
                        f"of {held.get('identity') or host})"
                    )
                gone.update(held)
            patch: dict[str, Any] = {"claim": {k: v for k, v in mine.items() if v is not None}}
            if gone:
                patch.update(status="failed", message="the last sync was interrupted")
            return patch

        self.update_status(workflow_id, mutate)
        if gone.get("syncId"):
            log.warning("workflow %s: sync %s was interrupted (its holder %s is gone)", workflow_id,
                        gone["syncId"], gone.get("identity") or gone.get("owner"))  # fmt: skip
            self.interrupt_record(str(gone["syncId"]))

    def release(self, workflow_id: str, sync_id: str) -> None:
        def mutate(obj: Obj, status: dict[str, Any]) -> dict[str, Any] | None:
            held = status.get("claim") or {}
            return {"claim": None} if held.get("syncId") == sync_id else None

        with contextlib.suppress(NotFoundError):  # removed meanwhile (a cascading removal ends so)
            self.update_status(workflow_id, mutate)

    def claim_alive(self, claim: dict[str, Any]) -> bool:
        owner = str(claim.get("owner") or "")
        if not owner:
            return False
        if owner.split(":", 1)[0] == _HOST:
            return owner_alive(owner)  # this machine: the process itself answers, exactly
        identity = claim.get("identity")
        if identity and identity == self.identity and owner != owner_id():
            return False  # an earlier run of this replica, on another machine (a rescheduled pod)
        lease = claim.get("lease")
        if not lease:
            return True  # another machine's process with no Lease: we cannot tell, so we must not steal
        record = lease_verbs.get(self.kube, self.namespace, str(lease))
        if record is None or record.holder != identity:
            return False
        return not _long_expired(record)

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
                if held.get("syncId"):
                    self.interrupt_record(str(held["syncId"]))
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

    def _drop_claim(self, obj: Obj, held: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        body = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": {"claim": None, "status": "failed", "message": "the last sync was interrupted"},
        }
        try:
            self.kube.patch_merge(WORKFLOWS, self.namespace, meta["name"], body, subresource="status")
        except (KubeConflict, KubeNotFound):
            return False  # someone else moved first
        except SlipwayError as e:
            log.warning("cannot release the stale claim on %s: %s", meta["name"], e)
            return False
        return True


def _long_expired(record: lease_verbs.LeaseRecord) -> bool:
    if not record.renew_time or not record.duration:
        return False
    try:
        renewed = dt.datetime.strptime(record.renew_time.rstrip("Z")[:26], "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        try:
            renewed = dt.datetime.strptime(record.renew_time.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            return False
    age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - renewed).total_seconds()
    return age > EXPIRED_AFTER * record.duration + 5


__all__ = ["INTERRUPTED", "Claims"]
