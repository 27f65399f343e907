"""The reliability suite: faults, bad input and secrets, each case a test on the real components.

Every case runs in the README's test command at a size that fits CI; ``make reliability`` runs
them at full size (``SLIPWAY_RELIABILITY=full``) and writes each figure to
``$SLIPWAY_RELIABILITY_OUT`` (default ``tests/reliability/results.json``), from which
docs/reliability.md's table is made (``python -m tests.reliability.report``).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli, cli, store_backend  # noqa: F401  (the slipway command as a user runs it)
from tests.server.conftest import SlipwayServer, start_server  # noqa: F401  (the real server on loopback)

FULL = os.environ.get("SLIPWAY_RELIABILITY") == "full"
OUT = Path(os.environ.get("SLIPWAY_RELIABILITY_OUT") or Path(__file__).with_name("results.json"))
_lock = threading.Lock()


def size(ci: int, full: int) -> int:
    """How many (trials, cases, objects): small in the test command, as the issue says at full size."""
    return full if FULL else ci


def figure(key: str, what: str, tried: int, held: int, command: str, **extra: Any) -> None:
    """Record one figure (what was tried, how many times, what held) for docs/reliability.md."""
    with _lock:
        data = json.loads(OUT.read_text()) if OUT.exists() else {}
        data[key] = {"what": what, "tried": tried, "held": held, "full": FULL, "command": command, **extra}
        OUT.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def record() -> Any:
    return figure
