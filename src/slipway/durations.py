"""Go-style durations, parsed and printed in one place.

Configuration uses strings such as ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1.5s"`` or ``"250ms"``
(the units Go's ``time.ParseDuration`` knows, minus the sub-microsecond ones). Results print a
duration the way the seed shows one, ``"45.2s"``, and longer ones as ``"2m5.3s"``.
"""

from __future__ import annotations

import re

from .errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")


def parse_duration(value: object, *, key: str = "duration") -> float:
    """Seconds in a Go-style duration string; ``key`` names the setting in the error."""
    example = 'such as "30s", "5m" or "1h30m"'
    if not isinstance(value, str) or isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration {example}, got {value!r}")
    text = value.strip()
    if text == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ConfigError(f"{key}: {value!r} is not a duration; use one {example}")
    return total


def format_duration(seconds: float) -> str:
    """``45.2s``, ``2m5.3s``, ``1h2m3.0s``: one decimal, Go's unit layout."""
    seconds = max(0.0, round(seconds, 1))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return f"{out}{secs:.1f}s"


def rfc3339(ts: float | None = None) -> str:
    """A UTC timestamp as the seed and Kubernetes write them, ``2026-01-31T12:00:00Z`` (now, by default)."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))
