"""``slipway diff | sync | rollback | history``: the pipeline, for people and for CI.

``diff`` exits 0 when nothing would change, 1 when something would, 2 on error (as ``argocd app
diff`` and kapp do), so CI can gate on it. ``sync`` shows the plan, asks (unless ``--yes`` or no
terminal), then applies exactly the plan that was shown — the engine refuses a plan that changed
in between — with live progress.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import click
from rich.markup import escape
from rich.status import Status
from rich.table import Table

from ..plan.model import Plan
from ..results import SyncResult
from .common import actor, confirm, engine, interactive
from .output import console, emit_json, err_console, json_mode

IMPACT_STYLE = {"low": "dim", "medium": "yellow", "high": "bold red", "critical": "bold white on red"}


def print_plan(plan: Plan) -> None:
    seed = plan.to_seed()
    s = seed["summary"]
    rev = (plan.revision or "")[:12]
    console.print(f"[bold]{plan.workflow_id}[/bold] at revision {rev}: {s['total_changes']} change(s) "
                  f"([green]+{s['created_resources']}[/green] [yellow]~{s['updated_resources']}[/yellow] "
                  f"[red]-{s['deleted_resources']}[/red]), {s['conflict_count']} conflict(s), "
                  f"{s['warning_count']} warning(s)")  # fmt: skip
    waved = len({c.wave for c in plan.changes}) > 1 or any(c.wave for c in plan.changes)
    for change in plan.changes:
        style = IMPACT_STYLE[change.impact]
        ns = f" [dim]({escape(change.namespace)})[/dim]" if change.namespace else ""
        wave = f" [cyan]wave {change.wave}[/cyan]" if waved else ""
        console.print(
            f"\n[{style}]{change.impact.upper()}[/{style}]{wave}{ns} [dim]{escape(', '.join(change.reasons))}[/dim]"
        )
        for line in change.diff.splitlines():
            color = ""
            if line.startswith(("+ Creating", "+++")) or (line.startswith("+") and not line.startswith("+++")):
                color = "green"
            elif line.startswith(("- Deleting", "---")) or (line.startswith("-") and not line.startswith("---")):
                color = "red"
            elif line.startswith("~ Updating") or line.startswith("@@"):
                color = "yellow" if line.startswith("~") else "cyan"
            console.print(f"[{color}]{escape(line)}[/{color}]" if color else escape(line))
    for c in plan.conflicts:
        style = "yellow" if c.type == "out_of_sync" else "red"
        console.print(f"\n[{style}]CONFLICT {c.type}[/{style}] {escape(c.resource)}: {escape(c.description)}")
        for tip in c.suggestions:
            console.print(f"  - {escape(tip)}")
    if seed["hooks"]:
        console.print("\n[bold]hooks[/bold] (run in their phase, not part of what Git declares):")
    for h in seed["hooks"]:
        if h["runs"]:
            policy = ", ".join(h["delete_policies"])
            console.print(f"  {escape('/'.join(h['phases']))} wave {h['wave']}: {escape(h['resource'])} "
                          f"[dim](delete policy {escape(policy)}; {escape(h['source'])})[/dim]")  # fmt: skip
        else:
            console.print(f"  never run by a sync: {escape(h['resource'])} [dim]({escape(h['note'])})[/dim]")
    if plan.warnings:
        console.print()
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    if not plan.changes and not plan.conflicts:
        console.print("[green]No changes:[/green] the cluster matches Git.")


@click.command("diff")
@click.argument("workflow_id")
def diff(workflow_id: str) -> None:
    """What a sync would change now. Exit 0: nothing; 1: changes pending; 2: error."""
    plan = engine().plan(workflow_id)
    if json_mode():
        emit_json(plan.to_seed())
    else:
        print_plan(plan)
    sys.exit(1 if plan.changes or plan.blocking else 0)


class _Progress:
    def __init__(self, status: Status | None) -> None:
        self.status = status
        self.applied = 0
        self.lock = threading.Lock()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if self.status is None:
            return
        with self.lock:
            # Resource names and hook commands are the user's text, not markup.
            if event == "stage":
                self.status.update(f"{escape(str(data['name']))}...")
            elif event in ("applied", "deleted"):
                self.applied += 1
                self.status.update(f"{event} {self.applied}: {escape(str(data['resource']))}")
            elif event == "health":
                self.status.update(f"waiting for health: {data['healthy']} of {data['total']} healthy")
            elif event == "hook":
                self.status.update(f"running {data['phase']}-sync hook: {escape(str(data['command']))}")
            elif event == "waiting":
                self.status.update(f"waiting for {escape(str(data['what']))}")


def print_result(result: SyncResult) -> None:
    if json_mode():
        emit_json(_result_json(result))
        return
    ok = result.status == "succeeded"
    style = "green" if ok else "red"
    m = result.metrics
    kind = "rollback" if result.kind == "rollback" else "sync"
    console.print(f"[{style}]{kind} {result.id} {result.status}[/{style}] in {m.duration}: "
                  f"{escape(result.message)}")  # fmt: skip
    console.print(f"  revision {(result.commit_hash or '-')[:12]}; processed {m.resources_processed}, "
                  f"applied {m.resources_applied}, skipped {m.resources_skipped}, "
                  f"conflicts resolved {m.conflicts_resolved}")  # fmt: skip
    for h in result.hooks:
        if h.get("kind") == "resource":
            mark = "ok" if h["status"] == "Succeeded" else f"FAILED: {h['message']}"
            console.print(f"  {h['phase']} hook {escape(h['resource'])}: {escape(mark)}")
        else:
            mark = "ok" if h["exit_code"] == 0 else "FAILED"
            console.print(f"  {h['phase']}-sync hook {escape(h['command'])!s}: {mark}")
    bad = [h for h in result.health if h["status"] != "Healthy"]
    for h in bad[:10]:
        console.print(f"  [yellow]{h['status']}[/yellow] {escape(h['resource'])}: {escape(h['message'])}")


def _result_json(result: SyncResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(result)


@click.command("sync")
@click.argument("workflow_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before applying.")
@click.option("--wait-lock", type=float, default=0.0, help="Seconds to wait if another sync holds the workflow.")
def sync(workflow_id: str, yes: bool, wait_lock: float) -> None:
    """Show the plan, ask, apply it, wait for health, record. Exit 0: succeeded; 1: failed."""
    eng = engine()
    plan = eng.preview_sync(workflow_id)
    if not json_mode():
        print_plan(plan)
    if plan.blocking:
        err_console.print("[red]refused:[/red] resolve the conflicts above first; nothing was applied")
    elif plan.changes and not yes and interactive() and not confirm("Apply these changes?"):
        err_console.print("not applied")
        sys.exit(1)
    use_status = not json_mode() and sys.stderr.isatty()
    with Status("syncing...", console=err_console) if use_status else _nullcontext() as status:
        result = run_cancellable(
            lambda cancel: eng.sync(
                workflow_id,
                revision=plan.revision,
                expected_plan=plan.fingerprint(),
                progress=_Progress(status if use_status else None),
                wait=wait_lock,
                cancel=cancel,
                actor=actor(),
            )
        )
    print_result(result)
    # A plan that the cluster refuses (bad input) is an error, like any other bad input: exit 2.
    sys.exit(0 if result.status == "succeeded" else 2 if plan.blocking else 1)


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
                err_console.print("cancelling at the next safe point (Ctrl-C again does not hurry it)...")
            cancel.set()
    worker.join()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@click.command("rollback")
@click.argument("workflow_id")
@click.option("--reason", required=True, help="Why (kept in the audit history).")
@click.option("--to", "to", help="A sync id to roll back to (default: the previous successful sync).")
def rollback(workflow_id: str, reason: str, to: str | None) -> None:
    """Restore the previous successful sync's state. Exit 0: rolled back; 1: failed."""
    use_status = not json_mode() and sys.stderr.isatty()
    with Status("rolling back...", console=err_console) if use_status else _nullcontext() as status:
        result = run_cancellable(
            lambda cancel: engine().rollback(
                workflow_id,
                reason,
                to=to,
                progress=_Progress(status if use_status else None),
                cancel=cancel,
                actor=actor(),
            )
        )
    print_result(result)
    sys.exit(0 if result.status == "succeeded" else 1)


@click.command("history")
@click.argument("workflow_id")
@click.option("--limit", type=int, default=20, show_default=True)
def history(workflow_id: str, limit: int) -> None:
    """Syncs and rollbacks, newest first."""
    rows = engine().history(workflow_id, limit)
    if json_mode():
        emit_json([_result_json(r) for r in rows])
        return
    table = Table(
        "ID", "KIND", "STATUS", "TRIGGER", "BY", "STARTED", "REVISION", "DURATION", "APPLIED", "MESSAGE", box=None
    )
    for r in rows:
        style = {"succeeded": "green", "failed": "red", "interrupted": "yellow"}.get(r.status, "white")
        rev = (r.commit_hash or "-")[:12]
        if r.kind == "rollback":
            rev = f"{(r.from_revision or '-')[:7]}->{(r.commit_hash or '-')[:7]}"
        message = r.message if r.kind != "rollback" else f"{r.message}"
        table.add_row(
            r.id, r.kind, f"[{style}]{r.status}[/{style}]" + (" (rolled back)" if r.rolled_back else ""), r.trigger,
            escape(r.actor or "-"), r.start_time, rev, r.metrics.duration, str(r.metrics.resources_applied), escape(message),
        )  # fmt: skip
    console.print(table)
