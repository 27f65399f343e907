"""``GET /api/v1/events``: the engine's events as Server-Sent Events, for dashboards and scripts.

Every sync, rollback and removal sends ``started``, its progress (``planned``, ``stage``,
``applied``, ``deleted``, ``hook``, ``health``, ``wave``...) and ``finished``; the controller
sends ``repository`` when a branch moves (with the workflows that follow it) and ``status``
when it marks a workflow degraded or recovered; ``assessed`` carries a workflow's sync status and
health each time they are computed. Each event is one SSE message: ``event:`` the
name, ``data:`` a JSON object naming the workflow.

A slow client never holds up a sync: the engine's thread only appends to the client's bounded
buffer and, when it was empty, wakes the client's coroutine. A client whose buffer is full
loses the newest events and is told so with a ``dropped`` event (how many) before the next one
it gets. ``?workflow=ID`` narrows the stream to one workflow.

A stream lasts as long as what let it in: about once a second it asks whether its token is still
valid (and its dashboard session still there, :mod:`.revocation`), and ends with an ``ended``
event when not. A token holds at most :data:`MAX_STREAMS` streams at once (429 past that).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from .auth import Viewer
from .context import ApiError, Ctx
from .revocation import EVERY, watch

log = logging.getLogger("slipway.server")

router = APIRouter(prefix="/api/v1", tags=["events"])

# Metrics-only events, too frequent to stream (one per repository per poll).
_NOT_STREAMED = {"check"}
MAX_STREAMS = 10  # open streams per token (a browser tab holds one)


class Client:
    def __init__(
        self, loop: asyncio.AbstractEventLoop, workflow: str | None, capacity: int, owner: str | None = None
    ) -> None:
        self.loop = loop
        self.workflow = workflow
        self.owner = owner  # the token's name: its streams are counted together
        self.capacity = capacity
        self.buffer: deque[tuple[str, dict[str, Any]]] = deque()
        self.dropped = 0
        self.lock = threading.Lock()
        self.wake = asyncio.Event()

    def offer(self, event: str, data: dict[str, Any]) -> bool:
        """Called in the engine's thread: never blocks. False when the event was dropped."""
        if (
            self.workflow is not None
            and self.workflow != data.get("workflow")
            and self.workflow not in (data.get("workflows") or ())
        ):
            return True
        with self.lock:
            if len(self.buffer) >= self.capacity:
                self.dropped += 1
                return False
            was_empty = not self.buffer
            self.buffer.append((event, data))
        if was_empty:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
                self.loop.call_soon_threadsafe(self.wake.set)
        return True

    def take(self) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        with self.lock:
            items, dropped = list(self.buffer), self.dropped
            self.buffer.clear()
            self.dropped = 0
        return items, dropped


class Hub:
    """Fans the engine's events out to every connected client."""

    def __init__(self, capacity: int = 1000, workflows_of: Any = None, per_owner: int = MAX_STREAMS) -> None:
        self.capacity = capacity
        self.per_owner = per_owner
        self.clients: set[Client] = set()
        self.lock = threading.Lock()
        self.dropped_total = 0
        self._workflows_of = workflows_of  # repository id -> the workflows that follow it
        self._seq = 0

    def listen(self, event: str, data: dict[str, Any]) -> None:
        if event in _NOT_STREAMED:
            return
        with self.lock:
            clients = list(self.clients)
        if not clients:
            return
        if event == "repository" and self._workflows_of is not None:
            try:
                data = {**data, "workflows": self._workflows_of(data.get("repository"))}
            except Exception:
                log.debug("events: cannot list the workflows of %s", data.get("repository"), exc_info=True)
        for client in clients:
            if not client.offer(event, data):
                with self.lock:
                    self.dropped_total += 1

    def connect(self, loop: asyncio.AbstractEventLoop, workflow: str | None, owner: str | None = None) -> Client | None:
        """A new client; None when ``owner`` already holds :attr:`per_owner` streams."""
        client = Client(loop, workflow, self.capacity, owner)
        with self.lock:
            if owner is not None and sum(1 for c in self.clients if c.owner == owner) >= self.per_owner:
                return None
            self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        with self.lock:
            self.clients.discard(client)

    def next_id(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq


async def stream(
    hub: Hub, client: Client, ended: Callable[[], Awaitable[str | None]] | None = None
) -> AsyncIterator[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    checked = loop.time()
    try:
        yield {"event": "hello", "data": json.dumps({"message": "connected; events follow as they happen"})}
        while True:
            if ended is not None and loop.time() - checked >= EVERY:
                checked = loop.time()
                why = await ended()
                if why is not None:
                    yield {"event": "ended", "data": json.dumps({"message": f"{why}; this stream is closed"})}
                    return
            items, dropped = client.take()
            if dropped:
                note = {"dropped": dropped, "message": f"this client was too slow: {dropped} event(s) were dropped"}
                yield {"event": "dropped", "id": str(hub.next_id()), "data": json.dumps(note)}
            for event, data in items:
                yield {"event": event, "id": str(hub.next_id()), "data": json.dumps(data, default=str)}
            if items or dropped:
                continue
            client.wake.clear()
            with client.lock:
                pending = bool(client.buffer) or bool(client.dropped)
            if not pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.wake.wait(), EVERY if ended is not None else None)
    finally:
        hub.disconnect(client)


@router.get(
    "/events",
    summary="Server-Sent Events: syncs started, their progress, finished, health, repositories moved",
    response_class=EventSourceResponse,
)
async def events(
    request: Request,
    ctx: Ctx,
    who: Viewer,
    workflow: Annotated[str | None, Query(description="Only this workflow's events")] = None,
) -> EventSourceResponse:
    client = ctx.hub.connect(asyncio.get_running_loop(), workflow, owner=who.name)
    if client is None:
        raise ApiError(429, f"token {who.name!r} already has {ctx.hub.per_owner} event streams open; close one first")
    return EventSourceResponse(
        stream(ctx.hub, client, watch(request)), ping=15, send_timeout=30, headers={"Cache-Control": "no-store"}
    )


__all__ = ["Client", "Hub", "router"]
