"""Retrying transient failures as a workflow's retry policy says (limit, backoff, max_duration).

Only errors marked ``retryable`` (connection errors, timeouts, 409, 429, 5xx) are tried again;
validation, forbidden and every other permanent error is raised at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .durations import parse_duration
from .errors import Cancelled, SlipwayError
from .model import RetryPolicy

T = TypeVar("T")
log = logging.getLogger("slipway.retry")


def with_retry(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    cancel: threading.Event | None = None,
    counter: list[int] | None = None,
) -> T:
    deadline = time.monotonic() + parse_duration(policy.max_duration)
    attempt = 0
    while True:
        try:
            return fn()
        except SlipwayError as e:
            if not e.retryable or attempt >= policy.limit:
                raise
            attempt += 1
            delay = policy.delay(attempt)
            if time.monotonic() + delay > deadline:
                raise
            # Visible without --debug: a slow sync should say why. The error usually names its object already.
            text = str(e) if str(e).startswith(what.split(" ", 1)[0]) else f"{what}: {e}"
            log.warning("%s; retry %d of %d in %.0fs", text, attempt, policy.limit, delay)
            if counter is not None:
                counter[0] += 1
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled(f"{what}: cancelled") from e
            else:
                time.sleep(delay)
