"""Removing a workflow with ``--cascade``: delete what it owns, within the prune rules, and keep the record.

    plan (everything in the inventory, as if Git declared nothing) -> backup -> prune -> record

What may be deleted is exactly what a prune may delete (:mod:`.plan.prune`): objects the
inventory says the workflow applied, that still carry its marks, with no controller owner, not
marked prune-disabled, and no Namespace or CRD that holds anything else. The rest stays, and
the record says why. The sync record (trigger ``remove``) stays in the history after the
workflow is gone, with the backups a person would need to recreate what was deleted.
"""

from __future__ import annotations

import logging

from .durations import rfc3339
from .errors import SlipwayError
from .plan.model import Plan
from .results import SyncResult
from .run import Run, refusal

log = logging.getLogger("slipway.sync")


class RemoveRun(Run):
    def execute(self, plan: Plan, expected_plan: str | None) -> SyncResult:
        store, result = self.store, self.result
        store.start_sync(result)
        failure: str | None = None
        with self.failures("removal") as failed:
            if plan.blocking:
                raise SlipwayError(refusal(plan))
            if expected_plan is not None and plan.fingerprint() != expected_plan:
                raise SlipwayError("refused: what the workflow owns changed since it was shown; review it again")
            self.stage("backup")
            self.backup(plan)
            self.stage("prune")
            self.prune_only(plan.deletions)
        failure = failed.message
        result.metrics = self.metrics(plan)
        result.end_time = rfc3339()
        result.changes = [c.to_record() for c in plan.changes]
        kept = f"; kept {len(plan.orphans)} (see the warnings of its plan)" if plan.orphans else ""
        if failure is None:
            result.status = "succeeded"
            result.message = f"Workflow removed: deleted {len(self.outcome.deleted)} object(s){kept}"
        else:
            result.status = "failed"
            result.message = f"Removal failed (the workflow stays): {failure}"
        store.finish_sync(
            result,
            workflow_status="removed" if failure is None else "failed",
            status_message=result.message,
            inventory=self.inventory_after(plan),
        )
        log.info("%s", result.message)
        return result
