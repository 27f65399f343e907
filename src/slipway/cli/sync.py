"""``slipway diff | sync | rollback | history``: the pipeline, for people and for CI.

``diff`` exits 0 when nothing would change, 1 when something would, 2 on error (as ``argocd app
diff`` and kapp do), so CI can gate on it; ``--local DIR`` and ``--revision REF`` plan a directory
or another branch or commit against the live cluster, as a pull request check runs it. ``sync``
shows the plan and applies it in one pass; when it asks first (a terminal, no ``--yes``), it
applies exactly the plan that was shown — the engine refuses a plan that changed in between.
Progress goes to stderr as the sync runs (see :mod:`.progress`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, NotPermitted, SlipwayError
from .common import actor, confirm, engine, interactive
from .output import emit_json, err, json_mode, out

if TYPE_CHECKING:
    from ..plan.model import Plan
    from ..results import SyncResult


def _views(command: Any) -> Any:
    command = click.option("--summary", "view", flag_value="summary", help="Print the summary table alone.")(command)
    command = click.option(
        "--diff", "view", flag_value="full", help="Print every object's diff (creates and deletions too)."
    )(command)
    return command


def _show(plan: Plan, view: str | None, resources: tuple[str, ...] = ()) -> None:
    from .printing import print_plan

    print_plan(plan, view or "default", resources)


@click.command("diff")
@click.argument("workflow_id")
@_views
@click.option("--resource", "resources", multiple=True, metavar="KIND/NAME",
              help="Only this object's change (repeatable).")  # fmt: skip
@click.option("--local", "local", metavar="DIR", type=click.Path(file_okay=False, exists=True),
              help="Plan this directory (the workflow's path, as in a checkout) instead of Git.")  # fmt: skip
@click.option(
    "--revision", metavar="REF", help="Plan this branch, tag or commit of the repository instead of the branch's head."
)
def diff(
    workflow_id: str, view: str | None, resources: tuple[str, ...], local: str | None, revision: str | None
) -> None:
    """What a sync would change now. Exit 0: nothing; 1: changes pending; 2: error.

    With --local or --revision it plans a change before it merges (a pull request check): that
    directory or that revision against the live objects and inventory of the workflow. Nothing is
    recorded and nothing is applied.
    """
    if local and revision:
        raise ConfigError("--local and --revision: give one of them")
    for r in resources:
        if "/" not in r:
            raise ConfigError(f"--resource {r!r}: expected KIND/NAME, e.g. Deployment/web")
    eng = engine()
    eng.warm_up(workflow_id)
    if local:
        plan = eng.plan_local(workflow_id, local)
    elif revision:
        plan = eng.plan(workflow_id, revision=eng.resolve_revision(workflow_id, revision))
    else:
        plan = eng.plan(workflow_id)
    changes, conflicts = (plan.changes, plan.conflicts)
    if resources:
        from .printing import select

        changes, conflicts = select(plan, resources)
    if json_mode():
        seed = plan.to_seed()
        if resources:
            seed["changes"] = [c.to_seed() for c in changes]
            seed["conflicts"] = [c.to_seed() for c in conflicts]
        emit_json(seed)
    else:
        _show(plan, view, resources)
    blocking = [c for c in conflicts if c.blocking]
    sys.exit(1 if changes or blocking else 0)


def _stop(result: SyncResult, plan: Plan | None) -> int:
    """The exit code: 0 succeeded; 2 bad input (a refused plan, or no plan at all: Git, the render or
    the cluster said no before anything could be planned); 1 any other failure."""
    if result.status == "succeeded":
        return 0
    return 2 if plan is None or plan.blocking else 1


@click.command("sync")
@click.argument("workflow_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before applying.")
@click.option("--wait-lock", type=float, default=0.0, help="Seconds to wait if another sync holds the workflow.")
@click.option("--revision", metavar="REF", help="Sync this commit (or tag) of the tracked branch instead of its head, "
              "or a commit this workflow applied before.")  # fmt: skip
@click.option("--off-branch", is_flag=True, help="Admin (the state store's owner): allow a --revision that is not "
              "on the tracked branch; the sync's record says so.")  # fmt: skip
@click.option("--wait/--no-wait", "wait_health", default=True,
              help="Wait for health after applying (default, as the workflow's health_check says); "
                   "--no-wait records the sync once applied, with the health it has then.")  # fmt: skip
@_views
def sync(
    workflow_id: str,
    yes: bool,
    wait_lock: float,
    view: str | None,
    revision: str | None,
    off_branch: bool,
    wait_health: bool,
) -> None:
    """Show the plan, apply it, wait for health, record. Exit 0: succeeded; 1: failed; 2: refused.

    On a terminal it asks before applying (unless --yes); without one (CI) it does not ask.
    """
    from .progress import Progress

    if off_branch and not revision:
        raise ConfigError("--off-branch goes with --revision REF")
    eng = engine()
    if off_branch and not eng.local_admin():
        raise NotPermitted("--off-branch: only the state store's owner (its admin) may sync off the tracked branch")
    eng.warm_up(workflow_id)
    if revision:
        revision = eng.resolve_revision(workflow_id, revision)
    progress = Progress.for_terminal(quiet=json_mode())
    shown: list[Plan] = []

    def on_plan(plan: Plan) -> None:
        shown.append(plan)
        progress.planned(plan)
        if json_mode():
            return  # the sync's record (stdout) says it all; stderr carries only errors
        _show(plan, view)
        if plan.blocking:
            err("refused: resolve the conflicts above first; nothing was applied")

    def planned(plan: Plan) -> None:
        shown.append(plan)
        progress.planned(plan)

    try:
        expected: str | None = None
        callback: Callable[[Plan], None] = on_plan
        if not yes and interactive():
            preview = (
                eng.plan(workflow_id, revision=revision, local_checks=True)
                if revision
                else eng.preview_sync(workflow_id)
            )
            on_plan(preview)
            shown.clear()  # the sync plans again: the plan it applies is the one reported
            if not preview.blocking and preview.changes and not confirm("Apply these changes?"):
                err("not applied")
                sys.exit(1)
            expected, revision, callback = preview.fingerprint(), preview.revision, planned
        result = run_cancellable(
            lambda cancel: eng.sync(
                workflow_id, revision=revision, expected_plan=expected, progress=progress, wait=wait_lock,
                cancel=cancel, on_plan=callback, actor=actor(), admin=off_branch, wait_health=wait_health,
            )
        )  # fmt: skip
    finally:
        progress.close()
    plan: Plan | None = shown[0] if shown else None
    if plan is None and result.status != "succeeded" and not result.message.startswith("Sync failed: cancelled"):
        # Nothing was planned: Git, the render or the cluster refused first. An error, on the record.
        from .output import error

        error(result.message.removeprefix("Sync failed: "), 2)
        sys.exit(2)
    _print_result(result, eng)
    sys.exit(_stop(result, plan))


def _print_result(result: SyncResult, eng: Any = None) -> None:
    if json_mode():
        emit_json(_result_json(result))
        return
    from .printing import print_result

    print_result(result)
    if eng is not None:
        _print_axes(eng, result.workflow_id)


def _print_axes(eng: Any, workflow_id: str) -> None:
    """Sync status and health as the run computed them as it ended: what is still not healthy, by name."""
    from ..results import sync_words

    try:
        kept = eng.run_state(workflow_id).get("assessment") or {}
    except SlipwayError:
        return
    if kept:
        health = kept["health"]
        why = f" ({health['message']})" if health.get("message") else ""
        out(f"sync status: {sync_words(kept['sync_status'])}; health: {health['status']}{why}")


def _result_json(result: SyncResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(result)


def _commit(r: SyncResult) -> str:
    """The commit's subject (cut to 50 characters) and its author's name, as Git has them."""
    if not r.commit_message:
        return "-"
    subject = r.commit_message if len(r.commit_message) <= 50 else r.commit_message[:49] + "…"
    author = (r.commit_author or "").split(" <")[0]
    return f"{subject} ({author})" if author else subject


def run_cancellable(work: Any) -> SyncResult:
    """Run ``work(cancel)`` in a thread; Ctrl-C asks it to stop at its next safe point, so the
    sync or rollback is always recorded as finished (failed: cancelled), never left running."""
    cancel = threading.Event()
    done = threading.Event()  # not Thread.is_alive: an interrupted join() can make it lie
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(work(cancel))
        except BaseException as e:  # handed to the main thread as it is
            box.append(e)
        finally:
            done.set()

    worker = threading.Thread(target=target, name="slipway-cli-sync")
    worker.start()
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            if not cancel.is_set():
                err("cancelling at the next safe point (Ctrl-C again does not hurry it)...")
            cancel.set()
    worker.join()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


@click.command("rollback")
@click.argument("workflow_id")
@click.option("--reason", required=True, help="Why (kept in the audit history).")
@click.option("--to", "to", help="A sync id to roll back to (default: the previous successful sync).")
def rollback(workflow_id: str, reason: str, to: str | None) -> None:
    """Restore the previous successful sync's state. Exit 0: rolled back; 1: failed; 2: refused."""
    from .progress import Progress

    progress = Progress.for_terminal(quiet=json_mode())
    try:
        result = run_cancellable(
            lambda cancel: engine().rollback(
                workflow_id, reason, to=to, progress=progress, cancel=cancel, actor=actor()
            )
        )
    finally:
        progress.close()
    _print_result(result, engine())
    sys.exit(0 if result.status == "succeeded" else 2 if result.status == "refused" else 1)


@click.command("history")
@click.argument("workflow_id")
@click.option("--limit", type=int, default=20, show_default=True, help="How many syncs and rollbacks to show.")
def history(workflow_id: str, limit: int) -> None:
    """Syncs and rollbacks, newest first."""
    rows = engine().history(workflow_id, limit)
    if json_mode():
        emit_json([_result_json(r) for r in rows])
        return
    from rich.markup import escape
    from rich.table import Table

    from .output import console

    table = Table(
        "ID",
        "KIND",
        "STATUS",
        "TRIGGER",
        "BY",
        "STARTED",
        "REVISION",
        "COMMIT",
        "DURATION",
        "APPLIED",
        "MESSAGE",
        box=None,
    )
    for r in rows:
        style = {"succeeded": "green", "failed": "red", "refused": "yellow", "interrupted": "yellow"}.get(
            r.status, "white"
        )
        rev = (r.commit_hash or "-")[:12]
        if r.kind == "rollback":
            rev = f"{(r.from_revision or '-')[:7]}->{(r.commit_hash or '-')[:7]}"
        table.add_row(
            r.id, r.kind, f"[{style}]{r.status}[/{style}]" + (" (rolled back)" if r.rolled_back else ""), r.trigger,
            escape(r.actor or "-"), r.start_time, rev, escape(_commit(r)), r.metrics.duration,
            str(r.metrics.resources_applied), escape(r.message),
        )  # fmt: skip
    console().print(table)
