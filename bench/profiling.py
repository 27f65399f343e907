"""Optional sampling profiles of slipway while the bench measures it (``--profile DIR``).

py-spy (a dev tool, not a dependency: ``pip install py-spy``) samples every thread of a process
from the outside without pausing it, so the same code path that is timed is profiled: the
bench's own process around each Engine call (P1-P3), the controller process during its cold
start and its idle window (P4). Each profile is written in py-spy's raw (collapsed stack) format
and summarised next to it as the functions with the most samples, inclusive and self.
Profiled runs cost some CPU on a small machine: report figures from runs without ``--profile``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# Sample only the thread that holds the GIL: where Python spends CPU rather than where it waits.
GIL_ONLY = False


def available() -> str | None:
    return shutil.which("py-spy")


@contextlib.contextmanager
def sampled(pid: int, out: Path | None, rate: int = 100) -> Iterator[None]:
    """Sample ``pid`` while the block runs, into ``out`` (raw) and ``out`` + ``.txt`` (summary)."""
    spy = available()
    if out is None or spy is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--nonblocking", "-o", str(out)]
    if GIL_ONLY:
        argv.append("--gil")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if out.exists():
            out.with_name(out.name + ".txt").write_text(summarize(out))


def _frame(frame: str) -> str:
    """``function (path/to/module.py:123)`` -> ``module.py:function``, paths shortened to the package."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/slipway/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{name.strip()}"


def summarize(raw: Path, top: int = 40) -> str:
    """The functions with the most samples: inclusive (anywhere on the stack) and self (on top)."""
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        for f in set(frames):
            inclusive[f] += n
        if frames:
            self_[frames[-1]] += n
    if not total:
        return "no samples\n"
    what = "thread holding the GIL only" if GIL_ONLY else "active threads only"
    lines = [f"{total} samples ({what})", "", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_.most_common(top)]
    return "\n".join(lines) + "\n"


__all__ = ["available", "sampled", "summarize"]
