"""``slipway run``: run seed-style Lua scripts (several files run as one chunk)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError


@click.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A value for the tasks' params table.")
@click.pass_context
def run(ctx: click.Context, files: tuple[Path, ...], params: tuple[str, ...]) -> None:
    """Run Lua scripts; exit 0 when every workflow succeeded, 1 when one failed, 2 when a script cannot load."""
    values: dict[str, str] = {}
    for p in params:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {p!r}: expected KEY=VALUE")
        values[key] = value
    for f in files:
        if not f.is_file():
            raise ConfigError(f"{f}: no such file")
    from ..lua import run_script

    sys.exit(run_script(list(files), values, debug=bool((ctx.obj or {}).get("debug"))))
