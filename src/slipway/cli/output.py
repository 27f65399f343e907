"""Printing for the CLI: rich text for people, ``-o json`` for programs, one line for errors."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.text import Text

# Piped output keeps whole lines (a table is not squeezed into 80 columns for grep or CI logs).
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 200)


def json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        if ctx.obj and "output" in ctx.obj:
            return bool(ctx.obj["output"] == "json")
        ctx = ctx.parent
    return False


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def info(message: str) -> None:
    """Progress for people: on stderr, so stdout stays clean for -o json; printed as it is (no markup)."""
    err_console.print(Text(message))
