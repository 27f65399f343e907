"""``slipway``: the root command, global options and the one place errors become exit codes.

Exit codes: 0 success; 1 the operation ran and failed (a sync, a rollback, a script), or — for
``diff`` — changes are pending; 2 an error (bad input, unreachable server). A user mistake prints
one line; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click
from rich.text import Text

from ..errors import SlipwayError, describe
from .admin import install, migrate
from .cluster import cluster
from .controller import controller
from .output import err_console
from .repo import repo
from .run import run
from .server import server
from .sync import diff, history, rollback, sync
from .token import token
from .workflow import workflow


@click.group()
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", help="Output format.")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, output: str, debug: bool) -> None:
    """slipway: GitOps for Kubernetes you can script, read and trust."""
    ctx.ensure_object(dict)
    ctx.obj["output"] = output
    ctx.obj["debug"] = debug
    # Commands print their own results; the log says only what went wrong, unless --debug.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)-5s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


COMMANDS = (repo, workflow, diff, sync, rollback, history, controller, server, token, run, cluster, install, migrate)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except SlipwayError as e:
        if debug:
            traceback.print_exc()
        err_console.print(_error_line(describe(e)))
        sys.exit(2)
    except Exception as e:
        if debug:
            traceback.print_exc()
        err_console.print(_error_line(f"{describe(e)} (run with --debug for details)"))
        sys.exit(2)


def _error_line(message: str) -> Text:
    # The message is printed as it is: it quotes URLs, names and server text ("map[string]interface {}",
    # "[/x]") that Rich would otherwise read as markup, mangle, or crash on.
    return Text.assemble(("error:", "red"), " ", message)
