"""``slipway controller``: the auto-sync loop in the foreground, stopped cleanly by SIGTERM or SIGINT.

It sends the workflows' notifications too (``notify``), as ``slipway server`` does.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from .common import engine
from .output import info


@click.command("controller")
@click.option("--concurrency", type=int, default=16, show_default=True, help="Workflows synced at once.")
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    help="Share the workflows with other replicas in this many shards, one Lease each (SLIPWAY_STORE=kubernetes).",
)
@click.option("--identity", help="This replica's name in the Leases (default: host name and pid).")
def controller(concurrency: int, shards: int | None, identity: str | None) -> None:
    """Sync every auto_sync workflow when its branch moves, until SIGTERM or SIGINT.

    With --shards, run as many replicas as you like: they spread the shards evenly, a replica
    that stops hands its shards over at once, and one that dies loses them after 15 s.
    """
    from ..controller import Controller
    from ..server.notifications import Notifier

    # A daemon's log is its output: one line per sync with its outcome.
    logging.getLogger("slipway").setLevel(min(logging.getLogger().level, logging.INFO))
    ctl = Controller(engine(), concurrency=concurrency, shards=shards, identity=identity)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        del frame
        if not stopping.is_set():
            info(f"received {signal.Signals(signum).name}; stopping after in-flight syncs")
        stopping.set()
        ctl.stop_event.set()
        ctl.cancel.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    info("controller running; SIGTERM or Ctrl-C stops it")
    notifier = Notifier(ctl.engine).start()
    try:
        ctl.run()
    finally:
        notifier.stop(5.0)
