"""``slipway workflow``: create, list, show the status of, and remove workflows."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .common import engine
from .output import console, emit_json, json_mode

STATUS_STYLE = {"synced": "green", "failed": "red", "degraded": "yellow", "syncing": "cyan", "active": "white"}


@click.group("workflow")
def workflow() -> None:
    """Workflows: a repository path applied to a cluster namespace."""


@workflow.command("create")
@click.option("--id", "workflow_id", help="Workflow id (generated when omitted). An existing id is updated.")
@click.option("--name", help="Human-readable name (default: the id).")
@click.option("--repository", required=True, help="Repository id (see `slipway repo list`).")
@click.option("--path", "target_path", default="", help="Path inside the repository (default: its root).")
@click.option("--namespace", default="default", show_default=True, help="Namespace for objects that name none.")
@click.option("--context", help="kubeconfig context of the destination cluster.")
@click.option("--kubeconfig", help="kubeconfig file of the destination cluster.")
@click.option("--auto-sync/--no-auto-sync", default=False, help="Sync when the branch moves.")
@click.option("--diff-preview/--no-diff-preview", default=True)
@click.option("--rollback-on-failure/--no-rollback-on-failure", default=False)
@click.option("--prune/--no-prune", default=False, help="Delete objects Git no longer declares.")
@click.option("--allow-empty", is_flag=True, help="Allow pruning everything when the render is empty.")
@click.option("--self-heal", is_flag=True, help="Re-sync when live drift is found.")
@click.option("--recreate", is_flag=True, help="Delete and re-create objects whose immutable fields change.")
@click.option("--health/--no-health", default=True, help="Wait for health after applying.")
@click.option("--health-timeout", default="5m", show_default=True)
@click.option("--failure-mode", type=click.Choice(["ignore", "fail", "rollback"]), default="fail", show_default=True)
@click.option("--retry-limit", type=int, default=3, show_default=True)
@click.option("--backoff", type=click.Choice(["exponential", "linear", "fixed"]), default="exponential")
@click.option("--pre-hook", multiple=True, help="Shell command to run before applying (repeatable).")
@click.option("--post-hook", multiple=True, help="Shell command to run after a healthy apply (repeatable).")
def create(**opts: Any) -> None:
    """Create (or update) a workflow."""
    config: dict[str, Any] = {
        "name": opts["name"],
        "repository": opts["repository"],
        "target_path": opts["target_path"],
        "auto_sync": opts["auto_sync"],
        "diff_preview": opts["diff_preview"],
        "rollback_on_failure": opts["rollback_on_failure"],
        "destination": {"namespace": opts["namespace"], "context": opts["context"], "kubeconfig": opts["kubeconfig"]},
        "sync_policy": {
            "auto_prune": opts["prune"],
            "allow_empty": opts["allow_empty"],
            "self_heal": opts["self_heal"],
            "recreate": opts["recreate"],
            "retry": {"limit": opts["retry_limit"], "backoff": opts["backoff"]},
            "health_check": {
                "enabled": opts["health"],
                "timeout": opts["health_timeout"],
                "failure_mode": opts["failure_mode"],
            },
            "pre_sync_hooks": list(opts["pre_hook"]),
            "post_sync_hooks": list(opts["post_hook"]),
        },
    }
    if opts["workflow_id"]:
        config["id"] = opts["workflow_id"]
    wf = engine().create_workflow(config)
    if json_mode():
        emit_json(wf.to_config())
    else:
        console.print(f"workflow [bold]{wf.id}[/bold] created: {escape(wf.repository)}:{escape(wf.target_path or '/')} -> "
                      f"namespace {wf.destination.namespace}")  # fmt: skip


@workflow.command("list")
def list_() -> None:
    eng = engine()
    rows = [eng.status(wf.id) for wf in eng.workflows()]
    if json_mode():
        emit_json(rows)
        return
    table = Table("ID", "NAME", "STATUS", "AUTO", "REPOSITORY", "LAST SYNC", "REVISION", box=None)
    for st in rows:
        last = st["last_sync_result"] or {}
        style = STATUS_STYLE.get(st["status"], "white")
        table.add_row(
            st["id"], escape(st["name"]), f"[{style}]{st['status']}[/{style}]", "yes" if st["auto_sync"] else "no",
            escape(st["repository"]), last.get("start_time", "-"), (last.get("commit_hash") or "-")[:12],
        )  # fmt: skip
    console.print(table)


@workflow.command("status")
@click.argument("workflow_id")
def status(workflow_id: str) -> None:
    """The seed's status table: status, last sync and its metrics."""
    eng = engine()
    st = eng.status(workflow_id)
    if json_mode():
        emit_json(st)
        return
    live = eng.live_state(workflow_id)
    style = STATUS_STYLE.get(st["status"], "white")
    console.print(f"[bold]{st['id']}[/bold] ({escape(st['name'])}): [{style}]{st['status']}[/{style}]")
    console.print(f"repository: {escape(st['repository'])}   auto-sync: {'on' if st['auto_sync'] else 'off'}")
    if live["hold_revision"]:
        # The last sync is not what runs: say so, or its revision would read as the live one.
        at = (
            f"revision {live['applied_revision'][:12]}"
            if live["applied_revision"]
            else "the state before its first sync"
        )
        console.print(f"rolled back: live at {at}; "
                      f"auto-sync leaves it there until a commit after {live['hold_revision'][:12]}")  # fmt: skip
        console.print(f"  {live['status_message']}", markup=False)
    last = st["last_sync_result"]
    if not last:
        console.print("never synced")
        return
    m = last["metrics"]
    console.print(f"last sync: {last['id']} {last['status']} at {last['start_time']} "
                  f"(revision {(last['commit_hash'] or '-')[:12]}, {m['duration']})")  # fmt: skip
    console.print(f"  {last['message']}", markup=False)
    console.print(f"  processed {m['resources_processed']}, applied {m['resources_applied']}, "
                  f"skipped {m['resources_skipped']}, conflicts resolved {m['conflicts_resolved']}")  # fmt: skip


@workflow.command("remove")
@click.argument("workflow_id")
def remove(workflow_id: str) -> None:
    """Forget a workflow (its objects stay in the cluster)."""
    engine().remove_workflow(workflow_id)
    if json_mode():
        emit_json({"id": workflow_id, "removed": True})
    else:
        console.print(f"workflow {workflow_id} removed (its objects stay in the cluster)")
