"""What the CLI commands share: the engine, who is asking, reading secrets without argv, confirmation."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from ..engine import Engine
from ..errors import ConfigError

_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine


def actor() -> str | None:
    """Who asks, as the history records it: the OS user running the command (None if it has no name)."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return None


def secret_from_env(var: str | None, what: str) -> str | None:
    """Secrets come from an environment variable named on the command line, never from argv itself."""
    if not var:
        return None
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{what}: environment variable {var} is not set or empty")
    return value


def read_file(path: str | None, what: str) -> str | None:
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{what}: {p} is not a file")
    return str(p)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def confirm(question: str) -> bool:
    return click.confirm(question, default=False, err=True)
