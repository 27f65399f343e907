"""``slipway``: the root command, global options and the one place errors become exit codes.

Exit codes: 0 success; 1 the operation ran and failed (a sync, a rollback, a script), or — for
``diff`` — changes are pending; 2 an error (bad input, unreachable server). A user mistake prints
one line (with ``-o json``, a JSON object on stderr); ``--debug`` adds the traceback. The command
modules import the engine and its libraries only when a command runs, so ``--help`` and the way
to the first API request stay quick.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

import slipway  # the package's version: a front may read it, it is no part of the engine

from ..errors import SlipwayError, describe
from .action import action
from .admin import install, migrate
from .cluster import cluster
from .controller import controller
from .health import health
from .output import FORMATS, error, guard_pipes, json_mode, output_option, set_format
from .repo import repo
from .run import run
from .server import server
from .sync import diff, history, rollback, sync
from .token import token
from .workflow import workflow


@click.group()
@click.option("-o", "--output", type=click.Choice(FORMATS), default=None,
              help="Output format: text, wide (more columns), json or yaml. Also accepted after the command.")  # fmt: skip
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--customizations", multiple=True, metavar="DIR", type=click.Path(exists=True, file_okay=False),
              help="A directory of Argo CD health scripts (<group>/<Kind>/health.lua); repeatable, later ones first.")  # fmt: skip
@click.version_option(slipway.__version__, "--version", prog_name="slipway", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, output: str | None, debug: bool, customizations: tuple[str, ...]) -> None:
    """slipway: GitOps for Kubernetes you can script, read and trust."""
    ctx.ensure_object(dict)
    set_format(output)
    ctx.obj["debug"] = debug
    if customizations:
        from ..engine import Engine

        Engine.use_customizations(list(customizations))
    # Commands print their own results; the log says only what went wrong, unless --debug.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)-5s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


COMMANDS = (repo, workflow, diff, sync, rollback, history, action, controller, server, token, run, health, cluster,
            install,
            migrate)  # fmt: skip
for command in COMMANDS:
    cli.add_command(command)


def _every_command(group: click.Group) -> list[click.Command]:
    out: list[click.Command] = []
    for command in group.commands.values():
        out.append(command)
        if isinstance(command, click.Group):
            out += _every_command(command)
    return out


def _early_format(argv: list[str]) -> None:
    """The output format from argv, for errors raised before click has read the options."""
    for i, arg in enumerate(argv):
        value = None
        if arg in ("-o", "--output") and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--output="):
            value = arg.partition("=")[2]
        elif arg.startswith("-o") and len(arg) > 2:
            value = arg[2:]
        if value in FORMATS:
            set_format(value)


def main() -> None:
    for command in _every_command(cli):
        output_option(command)
    guard_pipes()
    argv = sys.argv[1:]
    _early_format(argv)
    debug = "--debug" in argv
    try:
        cli.main(args=argv, prog_name="slipway", standalone_mode=False)
    except click.exceptions.Abort:
        error("aborted", 130)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        error(e.format_message(), 2)
        if isinstance(e, click.UsageError) and e.ctx is not None and not json_mode():
            sys.stderr.write(f"(see `{e.ctx.command_path} --help`)\n")
        sys.exit(2)
    except KeyboardInterrupt:
        error("interrupted", 130)
        sys.exit(130)
    except SlipwayError as e:
        if debug:
            traceback.print_exc()
        error(describe(e), 2)
        sys.exit(2)
    except Exception as e:
        if debug:
            traceback.print_exc()
        error(f"{describe(e)} (run with --debug for details)", 2)
        sys.exit(2)
