"""A sync's progress as it goes, from the events the run publishes (``stage``, ``wave``, ``applied``,
``deleted``, ``hook``, ``hook-finished``, ``waiting``, ``health``).

On a terminal, one status line redrawn in place: a bar of the objects applied out of the plan's
total, the wave, and during the health wait the objects not healthy yet, by name. Without a
terminal (CI), plain lines: one per stage, wave and hook, the count of applied objects every
couple of seconds, and while waiting for health a line every few seconds naming what is not
healthy yet, so a long wait never reads as silence. Progress goes to stderr; stdout keeps the plan
and the result.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .output import colored, paint

if TYPE_CHECKING:
    from ..plan.model import Plan

log = logging.getLogger("slipway.cli")
LINE_EVERY = 2.0  # seconds between "applied n of m" lines
HEALTH_EVERY = 5.0  # seconds between "waiting for health" lines
BAR_WIDTH = 24


def _named(w: dict[str, Any]) -> str:
    if not w.get("status"):
        return str(w["resource"])
    return f"{w['resource']} ({w['status']}{': ' + w['message'] if w.get('message') else ''})"


class Progress:
    """Called from the sync's threads with each event; ``close`` when the sync has returned."""

    def __init__(self, mode: str, stream: Any = None) -> None:
        self.mode = mode  # "bar" (a terminal), "lines" (CI) or "quiet"
        self.stream = stream if stream is not None else sys.stderr
        self.color = colored(self.stream)
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.total = 0
        self.applied = 0
        self.deleted = 0
        self.wave = ""
        self.stage = ""
        self.status = ""
        self.health_since = 0.0
        self.last_line = 0.0
        self.last_draw = 0.0
        self.drawn = False

    @classmethod
    def for_terminal(cls, quiet: bool) -> Progress:
        if quiet:
            return cls("quiet")
        return cls("bar" if sys.stderr.isatty() else "lines")

    def planned(self, plan: Plan) -> None:
        with self.lock:
            self.total = sum(1 for it in plan.items if it.action in ("create", "update"))
            self.total += len(plan.deletions)

    # -- events ----------------------------------------------------------------------------------------

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if self.mode == "quiet":
            return
        with self.lock:
            handler = getattr(self, f"_on_{event.replace('-', '_')}", None)
            if handler is None:
                return
            try:
                handler(data)
            except Exception as e:  # a line that cannot be drawn must never stop a sync half applied
                log.warning("progress: cannot show the %s event: %r", event, e)

    def _on_stage(self, data: dict[str, Any]) -> None:
        self.stage = str(data.get("name", ""))
        if self.stage == "health":
            self.health_since = time.monotonic()
        self._say(f"{self.stage}...", force=True)

    def _on_wave(self, data: dict[str, Any]) -> None:
        self.wave = f"wave {data['wave']} ({data['index']} of {data['of']})"
        self._say(f"{self.wave}: {data['objects']} object(s)", force=True)

    def _on_applied(self, data: dict[str, Any]) -> None:
        self.applied += 1
        self._count()

    def _on_deleted(self, data: dict[str, Any]) -> None:
        self.deleted += 1
        self._count()

    def _count(self) -> None:
        done = self.applied + self.deleted
        total = max(self.total, done)
        verb = "applied" if not self.deleted else "applied and deleted"
        final = done == total
        if self.mode == "bar":
            filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
            bar = paint("#" * filled, "green", self.color) + "." * (BAR_WIDTH - filled)
            self._draw(f"[{bar}] {done}/{total} {verb}" + (f" · {self.wave}" if self.wave else ""), force=final)
        else:
            now = time.monotonic()
            if final or now - self.last_line >= LINE_EVERY:
                self.last_line = now
                self._line(f"{verb} {done} of {total}")

    def _on_hook(self, data: dict[str, Any]) -> None:
        # Two kinds of hook say they start: a shell command of the workflow's policy (``command``),
        # and a wave of resource hooks (``hooks``, the objects of one phase's wave).
        if "command" in data:
            self._say(f"running {data['phase']}-sync hook: {data['command']}", force=True)
            return
        names = ", ".join(str(h) for h in data.get("hooks") or [])
        self._say(f"running {data.get('phase')} hooks of wave {data.get('wave')}: {names}", force=True)

    def _on_hook_finished(self, data: dict[str, Any]) -> None:
        self._say(f"{data.get('phase')} hook {data.get('resource')}: {data.get('status')}", force=True)

    def _on_waiting(self, data: dict[str, Any]) -> None:
        self._say(f"waiting for {data['what']}", force=True)

    def _on_health(self, data: dict[str, Any]) -> None:
        total, healthy = int(data["total"]), int(data["healthy"])
        waiting = data.get("waiting") or []
        if not self.health_since:
            self.health_since = time.monotonic()
        took = time.monotonic() - self.health_since
        names = ", ".join(_named(w) for w in waiting[:3])
        more = total - healthy - len(waiting[:3])
        if names and more > 0:
            names += f" and {more} more"
        text = f"health: {healthy} of {total} healthy" + (f"; not yet: {names}" if names else "")
        if self.mode == "bar":
            self._draw(f"{text} · {took:.0f}s", force=False)
            return
        now = time.monotonic()
        first = self.last_line < self.health_since
        if first or healthy == total or now - self.last_line >= HEALTH_EVERY:
            self.last_line = now
            self._line(f"{text} ({took:.0f}s)")

    # -- output -------------------------------------------------------------------------------------------

    def _say(self, text: str, force: bool) -> None:
        if self.mode == "bar":
            self._draw(text, force)
        else:
            self._line(text)

    def _line(self, text: str) -> None:
        stamp = paint(f"{time.monotonic() - self.started:6.1f}s", "dim", self.color)
        self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def _draw(self, text: str, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        width = 200
        try:
            import shutil

            width = shutil.get_terminal_size().columns
        except (OSError, ValueError):
            pass
        self.stream.write("\r\x1b[K" + text[: max(20, width - 1)])
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        with self.lock:
            if self.mode == "bar" and self.drawn:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self.mode = "quiet"


__all__ = ["Progress"]
