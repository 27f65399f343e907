"""``slipway workflow``: create, change, show, list, report on and remove workflows.

``create`` makes a new workflow and refuses an id that exists (nothing is reset by accident);
``set`` changes only the settings given and shows what changed; ``show`` prints the whole
configuration. ``remove`` forgets a workflow but keeps its history; ``--cascade`` first shows and
then deletes what it owns, within the same rules as a prune. ``unlock`` releases a claim whose
holder cannot be seen gone (another machine's process that left no liveness).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from .common import actor, confirm, engine, interactive, secret_from_env
from .output import colored, emit_json, err, json_mode, out, paint, wide
from .renderflags import decryption_table, helm_table, jsonnet_table, post_build_table, render_flags

STATUS_STYLE = {"synced": "green", "failed": "red", "degraded": "yellow", "syncing": "cyan", "active": ""}


def _options(create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The settings of a workflow as flags: with defaults for ``create``, unset (None) for ``set``."""

    def d(value: Any) -> Any:
        return value if create else None

    flags = [
        click.option("--name", help="Human-readable name (default: the id)."),
        click.option("--repository", required=create, help="Repository id (see `slipway repo list`)."),
        click.option("--path", "target_path", default=d(""), help="Path inside the repository (default: its root)."),
        click.option("--chart", help="A repository of type helm: the chart to deploy."),
        click.option("--chart-version", help='With --chart: a version range as Helm takes it ("^1.2", "~4.0.1"); '
                     "an exact version pins it (default: the newest release)."),
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
        click.option("--notify-on", type=click.Choice(["failed", "refused", "degraded", "succeeded", "rolled_back"]), multiple=True,
                     help="Outcome to notify (repeatable; default failed, refused, degraded, rolled_back)."),
        click.option("--ignore-difference", "ignore_difference", multiple=True, metavar="JSON",
                     help='A field another manager owns, as JSON (repeatable): {"kind": "Deployment", "group": '
                          '"apps", "json_pointers": ["/spec/replicas"]}; replaces the list on set.'),
        click.option("--ignore-differences-file", metavar="FILE", type=click.Path(dir_okay=False, exists=True),
                     help="A JSON or YAML list of such rules (sync_policy.ignore_differences)."),
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
        "chart": opts["chart"],
        "chart_version": opts["chart_version"],
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
            **_ignore_rules(opts, create),
        },
        "helm": helm_table(opts),
        "jsonnet": jsonnet_table(opts),
        "decryption": decryption_table(opts),
        "post_build": post_build_table(opts),
        "notify": {"url": notify_url, "events": list(opts["notify_on"]) or None}
                  if notify_url or opts["notify_on"] else None,
    }  # fmt: skip
    return table if create else _given(table)


def _ignore_rules(opts: dict[str, Any], create: bool) -> dict[str, Any]:
    """--ignore-difference and --ignore-differences-file as sync_policy.ignore_differences (checked by the model)."""
    rules: list[Any] = []
    for i, text in enumerate(opts.get("ignore_difference") or ()):
        try:
            rules.append(json.loads(text))
        except json.JSONDecodeError as e:
            raise ConfigError(f"--ignore-difference #{i + 1}: invalid JSON at column {e.colno}: {e.msg}") from None
    path = opts.get("ignore_differences_file")
    if path:
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"--ignore-differences-file {path}: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, list):
            raise ConfigError(f"--ignore-differences-file {path}: expected a list of rules")
        rules += loaded
    if rules or create or path:
        return {"ignore_differences": rules}
    return {}


# Tables the user writes whole (Helm values, Jsonnet arguments): a null in them is a value, not "not given".
_VERBATIM = ("values", "tlas", "ext_vars", "ignore_differences", "substitute")


def _given(table: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if isinstance(value, dict | list) and key in _VERBATIM:
            if value or key == "ignore_differences":  # an empty list given on purpose clears it
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
        out(
            f"workflow {wf.id} created: {wf.repository}:{wf.target_path or '/'} -> namespace {wf.destination.namespace}"
        )


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
        out(f"workflow {workflow_id}: nothing changed")
    for key, before, after in diff:
        out(f"{key}: {json.dumps(before)} -> {json.dumps(after)}")


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
        out(f"{key}: {json.dumps(value)}")


def _flat(config: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else key
        out += _flat(value, name) if isinstance(value, dict) and value else [(name, value)]
    return out


@workflow.command("list")
@click.option("--no-remote", is_flag=True, help="Do not ask the Git servers for the branches' heads (offline).")
@click.option("--live", is_flag=True, help="Compute every workflow's sync status and health now (one plan each).")
def list_(no_remote: bool, live: bool) -> None:
    """Every workflow: its sync status against Git, health, last operation, and the revisions.

    SYNC and HEALTH are as last computed (by the controller, or a command that computed them), AGE
    says how long ago; --live computes them afresh. "behind Git" means a sync would change
    something the workflow renders: a commit elsewhere in the repository is not news for it.
    """
    eng = engine()
    rows = eng.workflow_overview(remote=not no_remote, live=live)
    if json_mode():
        emit_json(rows)
        return
    from .axes import HEALTH_STYLE, SYNC_STYLE, list_cells
    from .printing import table

    color = colored(__import__("sys").stdout)
    head = ["ID", "NAME", "REPOSITORY", "PATH", "NAMESPACE", "SYNC", "HEALTH", "AGE", "STATUS", "LIVE", "HEAD", "AUTO"]
    if wide():
        head += ["LAST SYNC", "MESSAGE"]
    cells, styles = [head], [["bold"] * len(head)]
    for st in rows:
        status = st["status"] + (", behind Git" if st.get("out_of_date") else "")
        head_rev = st["branch_head"] or ("?" if st.get("head_error") else "-")
        sync, health, age = list_cells(st)
        row = [st["id"], st["name"], st["repository"], st["path"] or "/", st["namespace"], sync, health, age, status,
               (st["live_revision"] or "-")[:7], head_rev[:7], "yes" if st["auto_sync"] else "no"]  # fmt: skip
        style = ["", "", "", "", "", SYNC_STYLE.get(st["sync_status"]["status"], ""),
                 HEALTH_STYLE.get(st["health"]["status"], ""), "dim",
                 "yellow" if st.get("out_of_date") else STATUS_STYLE.get(st["status"], ""), "", "", ""]  # fmt: skip
        if wide():
            row += [(st["last_sync_result"] or {}).get("start_time", "-"), st.get("status_message") or ""]
            style += ["", "dim"]
        cells.append(row)
        styles.append(style)
    for line in table(cells, styles, color):
        out(line)
    failed = {st["repository"]: st["head_error"] for st in rows if st.get("head_error")}
    for repo_id, why in sorted(failed.items()):
        err(f"warning: branch head of repository {repo_id} unknown: {why}")


@workflow.command("status")
@click.argument("workflow_id")
def status(workflow_id: str) -> None:
    """Sync status against Git and health, computed now; the last operation; what holds the workflow.

    -o json: the seed's status table plus sync_status, health and operation (as `workflow get`).
    """
    eng = engine()
    st = eng.report(workflow_id)
    st.pop("objects", None)  # `workflow get` shows them
    if json_mode():
        emit_json(st)
        return
    from .axes import summary_lines

    live = eng.live_state(workflow_id)
    color = colored(__import__("sys").stdout)
    out(
        paint(st["id"], "bold", color)
        + f" ({st['name']}): "
        + paint(st["status"], STATUS_STYLE.get(st["status"], ""), color)
    )
    out(f"repository: {st['repository']}   auto-sync: {'on' if st['auto_sync'] else 'off'}")
    for line in summary_lines(st, color):
        out(line)
    if live["hold_revision"]:
        # The last sync is not what runs: say so, or its revision would read as the live one.
        at = (
            f"revision {live['applied_revision'][:12]}"
            if live["applied_revision"]
            else "the state before its first sync"
        )
        out(f"rolled back: live at {at}; auto-sync leaves it there until a commit after {live['hold_revision'][:12]}")
        out(f"  {live['status_message']}")
    last = st["last_sync_result"]
    if not last:
        out("never synced")
        return
    m = last["metrics"]
    out(f"last sync: {last['id']} {last['status']} at {last['start_time']} "
        f"(revision {(last['commit_hash'] or '-')[:12]}, {m['duration']})")  # fmt: skip
    out(f"  {last['message']}")
    out(f"  processed {m['resources_processed']}, applied {m['resources_applied']}, "
        f"deleted {m.get('resources_deleted', 0)}, skipped {m['resources_skipped']}, "
        f"conflicts resolved {m['conflicts_resolved']}")  # fmt: skip


@workflow.command("get")
@click.argument("workflow_id")
def get(workflow_id: str) -> None:
    """A workflow as `argocd app get` shows an application: sync status and health computed now, the
    last operation, every object with its own sync status and health, and the hooks of the last run.

    An object's sync status is Synced, OutOfSync (a sync would create or change it), Missing (slipway
    applied it and it was deleted) or Extra (it owns it and Git no longer declares it).
    """
    eng = engine()
    st = eng.report(workflow_id)
    objects = st.pop("objects", [])
    op = st.get("operation")
    hooks = eng.sync_record(op["sync_id"]).hooks if op else []
    if json_mode():
        emit_json({"workflow": st, "objects": objects, "hooks": hooks})
        return
    from .axes import hook_rows, object_rows, summary_lines
    from .printing import table

    wf = eng.workflow(workflow_id)
    color = colored(__import__("sys").stdout)
    out(paint(st["id"], "bold", color) + (f" ({st['name']})" if st["name"] != st["id"] else ""))
    out(f"repository:  {st['repository']}   path: {wf.target_path or '/'}   namespace: {wf.destination.namespace}"
        f"   auto-sync: {'on' if st['auto_sync'] else 'off'}")  # fmt: skip
    for line in summary_lines(st, color):
        out(line)
    out()
    if objects:
        rows = object_rows(objects)
        for line in table(rows, [["bold"] * len(rows[0])] + [[""] * len(rows[0])] * (len(rows) - 1), color):
            out(line)
    else:
        out("no objects: Git declares none and the workflow owns none")
    if hooks:
        out()
        out(f"hooks of {op['kind'] if op else 'the last run'} {op['sync_id'] if op else ''}:")
        rows = hook_rows(hooks)
        for line in table(rows, [["bold"] * len(rows[0])] + [[""] * len(rows[0])] * (len(rows) - 1), color):
            out(line)


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
            out(f"workflow {workflow_id} removed; its objects stay in the cluster and its "
                "history is kept (`slipway history` shows it)")  # fmt: skip
        return
    from .printing import print_plan, print_result

    plan = eng.removal_plan(workflow_id)
    if not json_mode():
        print_plan(plan)
    if plan.deletions and not yes:
        if not interactive():
            err("not removed: deleting objects needs --yes when there is no terminal to ask on")
            sys.exit(1)
        if not confirm(f"Delete these {len(plan.deletions)} object(s) and remove workflow {workflow_id}?"):
            err("not removed")
            sys.exit(1)
    result = eng.remove_workflow(workflow_id, cascade=True, expected_plan=plan.fingerprint(), actor=actor())
    assert result is not None
    print_result(result)
    sys.exit(0 if result.status == "succeeded" else 1)


@workflow.command("unlock")
@click.argument("workflow_id")
def unlock(workflow_id: str) -> None:
    """Release a sync's claim whose process is gone but cannot be seen gone (another machine's).

    A claim whose holder renews a Lease, or is a process of this machine, needs no unlock: it is
    recovered once the holder is gone. A holder seen alive is never unlocked (cancel its sync).
    """
    answer = engine().unlock_workflow(workflow_id)
    if json_mode():
        emit_json(answer)
    elif answer["unlocked"]:
        out(f"workflow {workflow_id} unlocked: sync {answer['sync_id']} ({answer['holder']}) recorded as interrupted")
    else:
        out(f"workflow {workflow_id} is not locked")
