"""``slipway action``: list and run resource actions on the objects a workflow owns.

``action list WORKFLOW KIND/NAME`` shows what the object's ``discovery.lua`` offers; ``action run``
runs one, asking first on a terminal (``--yes`` skips the question; without a terminal ``--yes``
is required, so a script never changes a live object by accident). Exit 0: the action succeeded;
1: it ran and failed (recorded in the history); 2: refused before anything ran.
"""

from __future__ import annotations

import sys

import click

from ..errors import ConfigError
from .common import actor, confirm, engine, interactive
from .output import emit_json, json_mode, out


@click.group("action")
@click.option("--customizations", "dirs", multiple=True, metavar="DIR",
              help="A directory of <group>/<Kind>/actions/ scripts (repeatable); before $SLIPWAY_CUSTOMIZATIONS.")  # fmt: skip
def action(dirs: tuple[str, ...]) -> None:
    """Resource actions (restart, scale, pause, resume, create-job, your own Lua) on a workflow's objects."""
    if dirs:
        from pathlib import Path

        for d in dirs:
            if not Path(d).expanduser().is_dir():
                raise ConfigError(f"--customizations: {d} is not a directory")
        engine().customizations = tuple(Path(d).expanduser() for d in dirs)


_namespace = click.option(
    "--namespace", "-n", default=None, help="The object's namespace, when KIND/NAME is ambiguous."
)


@action.command("list")
@click.argument("workflow_id")
@click.argument("ref", metavar="KIND/NAME")
@_namespace
def list_actions(workflow_id: str, ref: str, namespace: str | None) -> None:
    """The actions available on one object the workflow owns."""
    found = engine().actions(workflow_id, ref, namespace=namespace)
    if json_mode():
        emit_json(found)
        return
    obj = found["object"]
    if not found["actions"]:
        out(f"{obj['kind']}/{obj['name']}: no actions")
        return
    for a in found["actions"]:
        params = " ".join(f"{p['name']}={p['default'] or '?'}" for p in a["params"])
        state = " (disabled)" if a["disabled"] else ""
        out(f"{a['name']}{state}" + (f"  params: {params}" if params else ""))


@action.command("run")
@click.argument("workflow_id")
@click.argument("ref", metavar="KIND/NAME")
@click.argument("name", metavar="ACTION")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter of the action (repeatable).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before running it.")
@_namespace
def run_action(
    workflow_id: str, ref: str, name: str, params: tuple[str, ...], yes: bool, namespace: str | None
) -> None:
    """Run ACTION on one object the workflow owns; recorded in the history with who ran it."""
    values: dict[str, str] = {}
    for p in params:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {p!r}: give KEY=VALUE (e.g. --param replicas=3)")
        values[key] = value
    if not yes:
        if not interactive():
            raise ConfigError(f"action {name} changes a live object: give --yes to run it without a terminal")
        shown = " ".join(f"{k}={v}" for k, v in values.items())
        if not confirm(f"Run {name}{' ' + shown if shown else ''} on {ref} of workflow {workflow_id}?"):
            out("nothing was done")
            sys.exit(1)
    result = engine().run_action(workflow_id, ref, name, values, namespace=namespace, actor=actor())
    if json_mode():
        from dataclasses import asdict

        emit_json(asdict(result))
    else:
        out(f"action {result.id} {result.status}: {result.message}")
    sys.exit(0 if result.status == "succeeded" else 1)
