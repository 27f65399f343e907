"""A sync as a small state machine over the pipeline's stages (see :mod:`.run` for what runs share).

    fetch -> render -> plan -> pre-hooks -> backup -> apply -> prune -> health -> post-hooks -> record

A failed sync that changed something asks for an automatic rollback (``wants_rollback``) when
its policy says so; the engine runs it while it still holds the workflow's claim.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import hooks, settings
from .durations import parse_duration, rfc3339
from .errors import Cancelled, DecryptionError, HookError, Refused, SlipwayError, SyncFailed, describe
from .plan.model import Plan
from .rendering import undecryptable
from .results import SyncResult

if TYPE_CHECKING:
    pass
from .apply.hooks import HookRunner
from .run import Run, refused_or_failed, short

log = logging.getLogger("slipway.sync")


class SyncRun(Run):
    refused: bool = False  # refused before anything was applied: its own outcome (errors.Refused)
    before: dict[str, Any] | None = None  # the workflow's run state before this sync (set in execute)
    wants_rollback: bool = False  # failed after changing something, and the policy says roll back
    on_plan: Callable[[Plan], None] | None = None  # shown the plan before anything is applied

    def execute(self, revision: str | None = None, expected_plan: str | None = None) -> SyncResult:
        """Run every stage; returns the finished, recorded result (it never raises for a failed sync)."""
        store, wf, result = self.store, self.wf, self.result
        self.before = store.workflow_state(wf.id)  # what a refusal leaves as it was
        store.start_sync(result)
        log.info("sync %s of workflow %s started (%s)", result.id, wf.id, result.trigger)
        failure: str | None = None
        health_failed = False
        plan: Plan | None = None
        began = False  # past the plan's checks: a refused plan runs nothing, SyncFail hooks neither
        try:
            with self.failures("sync") as failed:
                self.stage("fetch")
                rev = self.engine.fetch(
                    self.repo, revision, cancel=self.cancel, policy=wf.sync_policy.retry, workflow=wf
                )
                result.commit_hash = rev
                store.update_sync(result)
                self.stage("render")
                try:
                    manifests = self.engine.render(wf, self.repo, rev, self.cancel)
                    self.rendered = (rev, copy.deepcopy(manifests))  # the axes at the end reuse it
                except DecryptionError as e:  # a SOPS file: a conflict naming it, nothing applied
                    plan = self.plan = undecryptable(wf.id, rev, e)
                else:
                    self.stage("plan")
                    plan = self.plan = self.engine.planner(wf, self.kube, self.cancel, local_checks=True).plan(
                        manifests, store.inventory(wf.id), rev
                    )
                result.changes = [c.to_record() for c in plan.changes]
                self.note_commit(rev)
                if wf.diff_preview:
                    self.preview(plan)
                if self.on_plan is not None:
                    self.on_plan(plan)
                if plan.blocking:
                    raise refused_or_failed(plan)
                if expected_plan is not None and plan.fingerprint() != expected_plan:
                    raise Refused(
                        "refused: the plan changed since it was shown (Git or the cluster moved); review it again"
                    )
                if plan.empty_render_refused:
                    raise Refused(f"refused: {plan.warnings[-1]}")
                began = True
                self.stage("pre-hooks")
                self.run_hooks("pre", wf.sync_policy.pre_sync_hooks, rev)
                hooks = self.hook_runner()
                self.namespaces_for_hooks(plan)
                hooks.run("PreSync", plan.hooks)
                ok, why = self.converge(plan, hooks)
                if not ok:
                    mode = wf.sync_policy.health_check.failure_mode
                    if mode != "ignore":
                        health_failed = True
                        raise SyncFailed(why)
                    result.message = f"{why} (ignored: failure_mode is ignore)"
                self.stage("post-hooks")
                hooks.run("PostSync", plan.hooks)
                self.run_hooks("post", wf.sync_policy.post_sync_hooks, rev)
            failure, self.refused = failed.message, failed.refused
        finally:
            if self._hooks is not None:
                result.hooks += self._hooks.results()
        if failure is not None and plan is not None and began and not self.cancel.is_set():
            self.sync_failed_hooks(plan)
        return self.finish(plan, failure, health_failed)

    _hooks: HookRunner | None = None

    def hook_runner(self) -> HookRunner:
        self._hooks = HookRunner(
            self.kube, self.wf.sync_policy.retry, parse_duration(self.wf.sync_policy.hook_timeout),
            cancel=self.cancel, progress=self.progress,
        )  # fmt: skip
        return self._hooks

    def namespaces_for_hooks(self, plan: Plan) -> None:
        """Namespaces the render declares that hooks run in are created first: a hook needs its namespace."""
        wanted = {h.ref.namespace for h in plan.hooks if h.spec.runs and h.pending}
        early = [it for it in plan.items if it.ref.group_kind == ("", "Namespace") and it.ref.name in wanted]
        if early and any(it.action in ("create", "update") for it in early):
            self._applier().apply(early, self.outcome)
            self._raise_failed()

    def sync_failed_hooks(self, plan: Plan) -> None:
        """SyncFail hooks, when the sync failed: their outcome is reported, and never hides the failure."""
        if not any("SyncFail" in h.spec.phases for h in plan.hooks):
            return
        runner = self.hook_runner()
        try:
            runner.run("SyncFail", plan.hooks)
        except SlipwayError as e:
            log.warning("sync %s: %s", self.result.id, describe(e))
        finally:
            self.result.hooks += runner.results()

    def preview(self, plan: Plan) -> None:
        """diff_preview: say what is about to change before anything does (in the log and to fronts)."""
        s = plan.summary()
        log.info(
            "sync %s of %s will change %d object(s): +%d ~%d -%d, %d conflict(s)",
            self.result.id, self.wf.id, s["total_changes"], s["created_resources"], s["updated_resources"],
            s["deleted_resources"], s["conflict_count"],
        )  # fmt: skip
        for change in plan.changes:
            log.info("  %s [%s]", change.headline().rstrip(":"), change.impact)
        self.progress("preview", {"summary": s})

    def run_hooks(self, phase: str, commands: list[str], revision: str) -> None:
        if not commands:
            return
        env = {
            **{k: v for k, v in os.environ.items() if k not in settings.SECRET_ENVIRONMENT},
            "SLIPWAY_WORKFLOW_ID": self.wf.id,
            "SLIPWAY_SYNC_ID": self.result.id,
            "SLIPWAY_REVISION": revision,
            "SLIPWAY_NAMESPACE": self.wf.destination.namespace,
            "SLIPWAY_HOOK": phase,
        }
        timeout = parse_duration(self.wf.sync_policy.hook_timeout)
        with hooks.kubeconfig_for(self.kube.kubeconfig, self.wf.destination.context) as kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
            for command in commands:
                if self.cancel.is_set():
                    raise Cancelled(f"cancelled before {phase}-sync hook {command!r}")
                self.progress("hook", {"phase": phase, "command": self.scrub(command)})
                hr = hooks.run_hook(phase, command, env, timeout, self.cancel)
                # A hook may print what it was given: never store a Secret's value or a credential.
                hr.output, hr.command = self.scrub(hr.output), self.scrub(hr.command)
                self.result.hooks.append(hr.to_dict())
                if self.cancel.is_set() and not hr.ok:
                    raise Cancelled(f"{phase}-sync hook {hr.command!r} stopped")
                if not hr.ok:
                    why = "timed out" if hr.exit_code is None else f"exited with {hr.exit_code}"
                    last = hr.output.strip().splitlines()[-1:] or [""]
                    raise HookError(f"{phase}-sync hook {hr.command!r} {why}: {last[0]}".rstrip(": "))

    def finish(self, plan: Plan | None, failure: str | None, health_failed: bool) -> SyncResult:
        store, wf, result = self.store, self.wf, self.result
        result.metrics = self.metrics(plan)
        result.end_time = rfc3339()
        changed = bool(self.outcome.applied or self.outcome.deleted)
        if failure is None:
            result.status = "succeeded"
            summary = f"applied {len(self.outcome.applied)}, deleted {len(self.outcome.deleted)}, unchanged {result.metrics.resources_skipped}"
            if plan is not None and plan.held:  # never counted as deleted: said, so no one takes it for done
                summary += f"; prune held back: {'; '.join(plan.held)}"
            if not self.wait_final_health and wf.sync_policy.health_check.enabled:
                result.message = "health not awaited (--no-wait)" + (f"; {result.message}" if result.message else "")
            result.message = (
                f"Sync completed successfully ({summary})"
                if not result.message
                else f"Sync completed ({summary}); {result.message}"
            )
            inventory = self.inventory_after(plan)
            for it in plan.orphans if plan else []:
                inventory[it.ref] = it.api_version
            self.record_axes(inventory)
            store.finish_sync(
                result,
                workflow_status="synced",
                status_message=result.message,
                inventory=inventory,
                applied_revision=result.commit_hash,
                # Self-heal restores what is live and keeps a rollback's hold; any other sync ends it.
                hold_revision=False if result.trigger == "self-heal" else None,
                history_limit=wf.history_limit,
            )
            log.info(
                "sync %s of %s at %s: succeeded (%s) in %s",
                result.id,
                wf.id,
                short(result.commit_hash),
                summary,
                result.metrics.duration,
            )
            return result

        if self.refused:
            return self.refuse(failure)
        result.status = "failed"
        result.message = f"Sync failed: {failure}"
        wants_rollback = changed and (
            wf.rollback_on_failure or (health_failed and wf.sync_policy.health_check.failure_mode == "rollback")
        )
        inventory = self.inventory_after(plan)
        self.record_axes(inventory)
        store.finish_sync(
            result,
            workflow_status="failed",
            status_message=result.message,
            inventory=inventory,
            # Applied in full and then not healthy in time: that revision is what runs (its health says the rest).
            applied_revision=result.commit_hash if health_failed and self.applied_all(plan) else None,
            history_limit=wf.history_limit,
        )
        log.warning("sync %s of %s at %s: failed: %s", result.id, wf.id, short(result.commit_hash), failure)
        self.wants_rollback = wants_rollback and not self.cancel.is_set()
        return result

    def refuse(self, why: str) -> SyncResult:
        """Refused before anything was applied: its own outcome; the workflow's status stays as it was."""
        result = self.result
        result.status, result.message = (
            "refused",
            f"Sync {why}" if why.startswith("refused") else f"Sync refused: {why}",
        )
        self.record_axes(None)
        self.store.finish_sync(result, workflow_status=str((self.before or {}).get("status") or "active"), status_message=result.message,
                               history_limit=self.wf.history_limit)  # fmt: skip
        log.warning("sync %s of %s at %s: %s", result.id, self.wf.id, short(result.commit_hash), result.message)
        return result

    def rolled_back(self, rb: SyncResult) -> None:
        """Record the automatic rollback the engine ran for this failed sync (``wants_rollback``)."""
        result = self.result
        if rb.status == "succeeded":
            result.message += f"; rolled back to {short(rb.commit_hash) or 'the state before it'}"
        else:
            result.message += f"; rollback failed: {rb.message}"
        result.rolled_back = rb.status == "succeeded"
        self.store.finish_sync(
            result,
            workflow_status="failed" if rb.status == "succeeded" else "degraded",
            status_message=result.message,
        )
