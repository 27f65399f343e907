"""``slipway workflow``: create, change, show, list, report on and remove workflows.

``create`` makes a new workflow and refuses an id that exists (nothing is reset by accident);
``set`` changes only the settings given and shows what changed; ``show`` prints the whole
configuration. ``remove`` forgets a workflow but keeps its history; ``--cascade`` first shows and
then deletes what it owns, within the same rules as a prune.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .common import actor, confirm, engine, interactive, secret_from_env
from .output import console, emit_json, err_console, json_mode
from .renderflags import helm_table, jsonnet_table, render_flags

STATUS_STYLE = {"synced": "green", "failed": "red", "degraded": "yellow", "syncing": "cyan", "active": "white"}


def _options(create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The settings of a workflow as flags: with defaults for ``create``, unset (None) for ``set``."""

    def d(value: Any) -> Any:
        return value if create else None

    flags = [
        click.option("--name", help="Human-readable name (default: the id)."),
        click.option("--repository", required=create, help="Repository id (see `slipway repo list`)."),
        click.option("--path", "target_path", default=d(""), help="Path inside the repository (default: its root)."),
        click.option("--namespace", default=d("default"), help="Namespace for objects that name none (default: default)."),
        click.option("--context", help="kubeconfig context of the destination cluster."),
        click.option("--kubeconfig", help="kubeconfig file of the destination cluster."),
        click.option("--auto-sync/--no-auto-sync", default=d(False), help="Sync when the branch moves."),
        click.option("--diff-preview/--no-diff-preview", default=d(True), help="Log the plan before applying it."),
        click.option("--rollback-on-failure/--no-rollback-on-failure", default=d(False),
                     help="Roll back automatically when a sync fails after changing something."),
        click.option("--prune/--no-prune", default=d(False), help="Delete objects Git no longer declares."),
        click.option("--allow-empty/--no-allow-empty", default=d(False),
                     help="Allow a path that renders nothing (and pruning everything then)."),
        click.option("--create-namespace/--no-create-namespace", default=d(False),
                     help="Create the destination namespace when it does not exist."),
        click.option("--self-heal/--no-self-heal", default=d(False), help="Re-sync when live drift is found."),
        click.option("--recreate/--no-recreate", default=d(False),
                     help="Delete and re-create objects whose immutable fields change."),
        click.option("--health/--no-health", default=d(True), help="Wait for health after applying."),
        click.option("--health-timeout", default=d("5m"), help='How long to wait for health (default "5m").'),
        click.option("--failure-mode", type=click.Choice(["ignore", "fail", "rollback"]), default=d("fail"),
                     help="What an unhealthy result does (default fail)."),
        click.option("--retry-limit", type=int, default=d(3), help="Retries of a transient error (default 3)."),
        click.option("--backoff", type=click.Choice(["exponential", "linear", "fixed"]), default=d("exponential"),
                     help="Delay between retries (default exponential)."),
        click.option("--history-limit", type=int, default=d(100), help="Syncs kept in the history (default 100)."),
        click.option("--pre-hook", multiple=True, help="Shell command to run before applying (repeatable)."),
        click.option("--post-hook", multiple=True, help="Shell command to run after a healthy apply (repeatable)."),
        click.option("--notify-url", help="POST a JSON message here when a sync ends as --notify-on says "
                     "(a URL without secrets; for one with a token use --notify-url-env)."),
        click.option("--notify-url-env", metavar="VAR", help="Name of the environment variable holding the notify URL."),
        click.option("--notify-on", type=click.Choice(["failed", "degraded", "succeeded", "rolled_back"]), multiple=True,
                     help="Outcome to notify (repeatable; default failed, degraded, rolled_back)."),
    ]  # fmt: skip

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for flag in reversed(flags):
            fn = flag(fn)
        return render_flags(fn)

    return decorate


def _config(opts: dict[str, Any], *, create: bool) -> dict[str, Any]:
    """The flags given, as the nested table the engine takes (only those given, for ``set``)."""
    hooks_given = create or bool(opts["pre_hook"]) or bool(opts["post_hook"])
    notify_url = opts["notify_url"] or secret_from_env(opts["notify_url_env"], "--notify-url-env")
    if opts["notify_url"] and opts["notify_url_env"]:
        raise click.UsageError("--notify-url and --notify-url-env: give one")
    table: dict[str, Any] = {
        "name": opts["name"],
        "repository": opts["repository"],
        "target_path": opts["target_path"],
        "auto_sync": opts["auto_sync"],
        "diff_preview": opts["diff_preview"],
        "rollback_on_failure": opts["rollback_on_failure"],
        "history_limit": opts["history_limit"],
        "destination": {"namespace": opts["namespace"], "context": opts["context"], "kubeconfig": opts["kubeconfig"]},
        "sync_policy": {
            "auto_prune": opts["prune"],
            "allow_empty": opts["allow_empty"],
            "create_namespace": opts["create_namespace"],
            "self_heal": opts["self_heal"],
            "recreate": opts["recreate"],
            "retry": {"limit": opts["retry_limit"], "backoff": opts["backoff"]},
            "health_check": {
                "enabled": opts["health"],
                "timeout": opts["health_timeout"],
                "failure_mode": opts["failure_mode"],
            },
            **({"pre_sync_hooks": list(opts["pre_hook"]), "post_sync_hooks": list(opts["post_hook"])}
               if hooks_given else {}),
        },
        "helm": helm_table(opts),
        "jsonnet": jsonnet_table(opts),
        "notify": {"url": notify_url, "events": list(opts["notify_on"]) or None}
                  if notify_url or opts["notify_on"] else None,
    }  # fmt: skip
    return table if create else _given(table)


# Tables the user writes whole (Helm values, Jsonnet arguments): a null in them is a value, not "not given".
_VERBATIM = ("values", "tlas", "ext_vars")


def _given(table: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if isinstance(value, dict) and key in _VERBATIM:
            if value:
                out[key] = value
        elif isinstance(value, dict):
            value = _given(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


@click.group("workflow")
def workflow() -> None:
    """Workflows: a repository path applied to a cluster namespace."""


@workflow.command("create")
@click.option("--id", "workflow_id", help="Workflow id (generated when omitted); an existing id is refused.")
@_options(create=True)
def create(workflow_id: str | None, **opts: Any) -> None:
    """Create a workflow (to change one, use `slipway workflow set`)."""
    config = _config(opts, create=True)
    if workflow_id:
        config["id"] = workflow_id
    wf = engine().create_workflow(config, exists_ok=False)
    if json_mode():
        emit_json(wf.public())
    else:
        console.print(f"workflow [bold]{escape(wf.id)}[/bold] created: {escape(wf.repository)}:"
                      f"{escape(wf.target_path or '/')} -> namespace {escape(wf.destination.namespace)}")  # fmt: skip


@workflow.command("set")
@click.argument("workflow_id")
@_options(create=False)
def set_(workflow_id: str, **opts: Any) -> None:
    """Change only the settings given; shows what changed."""
    changes = _config(opts, create=False)
    if not changes:
        raise click.UsageError("nothing to change: give at least one setting (see --help)")
    old, new = engine().update_workflow(workflow_id, changes)
    diff = _changed(old.public(), new.public())  # public: a notify URL shows masked
    if json_mode():
        emit_json({"workflow": new.public(), "changed": {k: {"from": a, "to": b} for k, a, b in diff}})
        return
    if not diff:
        console.print(f"workflow {escape(workflow_id)}: nothing changed")
    for key, before, after in diff:
        console.print(f"{escape(key)}: {escape(json.dumps(before))} -> {escape(json.dumps(after))}")


def _changed(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            out += _changed(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if before == after else [(prefix, before, after)]


@workflow.command("show")
@click.argument("workflow_id")
def show(workflow_id: str) -> None:
    """The whole configuration of a workflow."""
    wf = engine().workflow(workflow_id)
    config = wf.public()
    if json_mode():
        emit_json(config)
        return
    for key, value in _flat(config):
        console.print(f"{escape(key)}: {escape(json.dumps(value))}")


def _flat(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else key
        out += _flat(value, name) if isinstance(value, dict) and value else [(name, value)]
    return out


@workflow.command("list")
def list_() -> None:
    """Every workflow with its status and last sync."""
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
            escape(st["id"]), escape(st["name"]), f"[{style}]{escape(st['status'])}[/{style}]",
            "yes" if st["auto_sync"] else "no", escape(st["repository"]), last.get("start_time", "-"),
            (last.get("commit_hash") or "-")[:12],
        )  # fmt: skip
    console.print(table)


@workflow.command("status")
@click.argument("workflow_id")
def status(workflow_id: str) -> None:
    """The seed's status table: status, last sync and its metrics, and what holds the workflow."""
    eng = engine()
    st = eng.status(workflow_id)
    if json_mode():
        emit_json(st)  # exactly the seed's table
        return
    live = eng.live_state(workflow_id)
    style = STATUS_STYLE.get(st["status"], "white")
    console.print(f"[bold]{escape(st['id'])}[/bold] ({escape(st['name'])}): [{style}]{escape(st['status'])}[/{style}]")
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
                  f"(revision {(last['commit_hash'] or '-')[:12]}, {m['duration']})", markup=False)  # fmt: skip
    console.print(f"  {last['message']}", markup=False)
    console.print(f"  processed {m['resources_processed']}, applied {m['resources_applied']}, "
                  f"deleted {m.get('resources_deleted', 0)}, skipped {m['resources_skipped']}, "
                  f"conflicts resolved {m['conflicts_resolved']}")  # fmt: skip


@workflow.command("remove")
@click.argument("workflow_id")
@click.option("--cascade", is_flag=True, help="First delete what the workflow owns (shown, then asked).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before deleting (with --cascade).")
def remove(workflow_id: str, cascade: bool, yes: bool) -> None:
    """Forget a workflow; its history stays. Its objects stay in the cluster unless --cascade."""
    eng = engine()
    if not cascade:
        eng.remove_workflow(workflow_id)
        if json_mode():
            emit_json({"id": workflow_id, "removed": True, "cascade": False})
        else:
            console.print(f"workflow {escape(workflow_id)} removed; its objects stay in the cluster and its "
                          "history is kept (`slipway history` shows it)")  # fmt: skip
        return
    from .sync import print_plan, print_result

    plan = eng.removal_plan(workflow_id)
    if not json_mode():
        print_plan(plan)
    if plan.deletions and not yes:
        if not interactive():
            err_console.print("not removed: deleting objects needs --yes when there is no terminal to ask on")
            sys.exit(1)
        if not confirm(f"Delete these {len(plan.deletions)} object(s) and remove workflow {workflow_id}?"):
            err_console.print("not removed")
            sys.exit(1)
    result = eng.remove_workflow(workflow_id, cascade=True, expected_plan=plan.fingerprint(), actor=actor())
    assert result is not None
    print_result(result)
    sys.exit(0 if result.status == "succeeded" else 1)
