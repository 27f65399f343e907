"""What every part of the server shares: the engine, the controller, and how errors become answers.

One :class:`Context` per app, on ``app.state.slipway``. Errors are one JSON shape everywhere,
``{"error": "...", "status": N, ...}``: :class:`ApiError` for what a route decides, and
:func:`status_of` for what the engine raises (a workflow that does not exist is 404, a workflow
another sync holds is 409, bad input is 400, an unreachable Git server or cluster is 502).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request

from ..errors import (
    Cancelled,
    ConfigError,
    HeldBack,
    KubeError,
    ManifestError,
    NotFoundError,
    NotPermitted,
    SlipwayError,
    SourceError,
    SyncInProgress,
    UserError,
)

if TYPE_CHECKING:
    from ..controller import Controller
    from ..engine import Engine
    from .events import Hub
    from .metrics import Metrics
    from .notifications import Notifier
    from .plans import Plans
    from .runs import Tracker
    from .sources import Sources
    from .webhooks import Replays

log = logging.getLogger("slipway.server")

MAX_BODY = 1024 * 1024


class ApiError(HTTPException):
    """An answer other than success: ``{"error": message, "status": code, **extra}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(status_code=status, detail=message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status_code, **self.extra}


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes", limit=limit)


def status_of(exc: SlipwayError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, SyncInProgress | HeldBack):
        return 409
    if isinstance(exc, ManifestError):
        return 422
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, ConfigError | UserError):
        return 400
    if isinstance(exc, Cancelled):
        return 503
    if isinstance(exc, SourceError | KubeError):
        return 502
    return 500


@dataclass
class Context:
    engine: Engine
    controller: Controller | None
    tracker: Tracker
    hub: Hub
    metrics: Metrics
    notifier: Notifier | None = None
    sources: Sources | None = None  # what the server saw of each Git server (GET /api/v1/sources)
    webhook_secret: bytes | None = field(default=None, repr=False)
    max_body: int = MAX_BODY
    plans: Plans = field(default_factory=lambda: _plans())  # the last plan of each workflow, for viewers
    metrics_access: str = "open"  # open | token | off (slipway server --metrics)
    secure_cookies: bool = False  # the session cookie is Secure even over plain HTTP (behind a TLS proxy)
    # Set on SIGTERM: syncs and plans the server started stop at their next safe point.
    cancel: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    webhooks_seen: Replays = field(default_factory=lambda: _replays())
    threads: set[threading.Thread] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin_shutdown(self) -> None:
        """Stop taking work: readiness fails, and every sync in this process stops at its next safe point."""
        self.stopping.set()
        self.cancel.set()
        if self.controller is not None:
            self.controller.stop_event.set()
            self.controller.cancel.set()

    def spawn(self, name: str, target: Any) -> threading.Thread:
        """A worker thread that shutdown waits for (a sync or rollback the API started)."""

        def run() -> None:
            try:
                target()
            finally:
                with self.lock:
                    self.threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self.lock:
            self.threads.add(thread)
        thread.start()
        return thread

    def join(self, timeout: float) -> None:
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout)


def _replays() -> Replays:
    from .webhooks import Replays

    return Replays()


def _plans() -> Plans:
    from .plans import Plans

    return Plans()


def context(request: Request) -> Context:
    ctx: Context = request.app.state.slipway
    return ctx


Ctx = Annotated[Context, Depends(context)]

__all__ = ["MAX_BODY", "ApiError", "BodyTooLarge", "Context", "Ctx", "context", "status_of"]
