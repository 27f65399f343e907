"""Printing for the CLI: text for people, ``-o json|yaml`` for programs, one line (or JSON) for errors.

The output format may be given before or after the command (``slipway -o json diff web`` and
``slipway diff web -o json``). Plain lines are written straight to stdout, coloured only on a
terminal (and never with ``NO_COLOR``): printing a plan of a thousand changes must never be the
slow part of a command. Rich is loaded only for the few small tables that use it. A closed pipe
(``slipway diff web | head``) silences the rest of the output and changes nothing else: the
command still ends with its own exit code.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("text", "wide", "json", "yaml")
_state: dict[str, Any] = {"format": "text", "consoles": {}}


def set_format(value: str | None) -> None:
    if value:
        _state["format"] = value


def output_format() -> str:
    return str(_state["format"])


def json_mode() -> bool:
    """Machine-readable output (``-o json`` or ``-o yaml``): results on stdout, nothing else."""
    return output_format() in ("json", "yaml")


def wide() -> bool:
    return output_format() == "wide"


def _set_from_option(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    del ctx, param
    set_format(value)


def output_option(command: click.Command) -> None:
    """Give ``command`` its own ``-o``, so the format can follow the command as well as precede it."""
    if any("-o" in p.opts for p in command.params if isinstance(p, click.Option)):
        return
    command.params.append(
        click.Option(
            ["-o", "--output"],
            type=click.Choice(FORMATS),
            default=None,
            expose_value=False,
            is_eager=True,
            callback=_set_from_option,
            help="Output format: text, wide, json or yaml.",
        )
    )


def emit_json(data: Any) -> None:
    """The result of a command in the machine format asked for (json or yaml)."""
    if output_format() == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=False))
        return
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# -- plain lines --------------------------------------------------------------------------------------

_COLORS = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36", "dim": "2", "bold": "1"}


def colored(stream: Any) -> bool:
    return not os.environ.get("NO_COLOR") and bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, style: str, on: bool) -> str:
    if not on or not style:
        return text
    codes = ";".join(_COLORS[s] for s in style.split() if s in _COLORS)
    return f"\x1b[{codes}m{text}\x1b[0m" if codes else text


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    """A line for people on stderr (stdout stays clean for -o json), printed as it is."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


info = err


# -- rich, for the small tables that use it -------------------------------------------------------------


def console() -> Console:
    return _console(False)


def err_console() -> Console:
    return _console(True)


def _console(stderr: bool) -> Console:
    made = _state["consoles"]
    if stderr not in made:
        from rich.console import Console

        stream = sys.stderr if stderr else sys.stdout
        # Piped output keeps whole lines (a table is not squeezed into 80 columns for grep or CI logs).
        made[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True, width=None if stream.isatty() else 200)
    return made[stderr]


# -- errors and closed pipes --------------------------------------------------------------------------


def error(message: str, exit_code: int) -> None:
    """One error, as the output format asks: ``error: ...`` for people, a JSON object for programs."""
    if json_mode():
        sys.stderr.write(json.dumps({"error": message, "exit_code": exit_code}) + "\n")
    else:
        sys.stderr.write(paint("error:", "red", colored(sys.stderr)) + " " + message + "\n")
    sys.stderr.flush()


class QuietOnClosedPipe:
    """A stream that goes quiet, instead of raising, once its reader has gone (``| head``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.closed_pipe = False

    def write(self, text: str) -> int:
        if not self.closed_pipe:
            try:
                return int(self._inner.write(text))
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.closed_pipe:
            try:
                self._inner.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.closed_pipe = True
        # Whatever is still buffered, and what the interpreter flushes at exit, goes nowhere.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._inner.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def guard_pipes() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, QuietOnClosedPipe):
            setattr(sys, name, QuietOnClosedPipe(stream))
