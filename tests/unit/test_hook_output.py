"""A shell hook's output is read as it comes and only its last ``MAX_OUTPUT`` bytes are kept.

A hook that prints without end must not be held whole in slipway's memory (nor on its disk):
``tracemalloc`` measures what Python allocated while a hook printed 32 MiB.
"""

from __future__ import annotations

import time
import tracemalloc

from slipway import hooks


def test_a_chatty_hook_is_read_bounded_and_keeps_its_last_lines() -> None:
    size = 32 * 1024 * 1024
    command = f"head -c {size} /dev/zero | tr '\\0' x; echo; echo the-last-line"
    tracemalloc.start()
    try:
        result = hooks.run_hook("pre", command, {"PATH": "/usr/bin:/bin"}, timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert result.output.startswith("...\n") and result.output.rstrip().endswith("the-last-line")
    assert len(result.output.encode()) <= hooks.MAX_OUTPUT + 16
    assert peak < 4 * 1024 * 1024, f"{peak} bytes held while the hook printed {size}"


def test_a_hook_that_leaves_a_child_behind_still_returns_when_it_exits() -> None:
    started = time.monotonic()
    result = hooks.run_hook("post", "echo before; (sleep 30; echo late) & echo after", {"PATH": "/usr/bin:/bin"}, 60)
    assert time.monotonic() - started < 10
    assert result.ok and "before" in result.output and "after" in result.output and "late" not in result.output


def test_a_hook_that_times_out_keeps_what_it_printed() -> None:
    result = hooks.run_hook("pre", "echo started; sleep 30", {"PATH": "/usr/bin:/bin"}, timeout=1)
    assert result.exit_code is None and "started" in result.output and "timed out after 1s" in result.output
