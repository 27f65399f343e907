"""Syncs and rollbacks over HTTP: start one (202 with its id), then follow it by that id.

``POST /workflows/{id}/sync`` names the sync (:meth:`Engine.new_sync_id`), starts it in a thread
of its own and answers once the engine holds the workflow's claim — or with the reason it could
not (409 when another sync holds the workflow, 404 when there is no such workflow). The
:class:`Tracker` follows every sync in this process through the engine's events — the API's and
the controller's — so ``GET /syncs/{id}`` shows its stage and how many objects it applied of how
many, and, once it is recorded, the result as the history keeps it. It remembers the latest
1,000 finished runs; older ones are read from the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from ..errors import SlipwayError, describe
from .auth import Operator, Principal, Viewer, actor
from .context import ApiError, Context, Ctx, status_of

log = logging.getLogger("slipway.server")

router = APIRouter(prefix="/api/v1", tags=["syncs"])

CLAIM_WAIT = 30.0  # seconds the POST waits for the sync to hold its workflow before answering "pending"


@dataclass
class RunState:
    id: str
    workflow_id: str
    kind: str
    state: str = "pending"  # pending | running | finished
    trigger: str | None = None
    stage: str | None = None
    total: int | None = None
    applied: int = 0
    deleted: int = 0
    health: dict[str, int] | None = None
    hooks: int = 0
    status: str | None = None
    message: str | None = None
    started: float = field(default_factory=time.time)
    claimed: concurrent.futures.Future[None] = field(default_factory=concurrent.futures.Future, repr=False)

    def progress(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "objects_total": self.total,
            "objects_applied": self.applied,
            "objects_deleted": self.deleted,
            "health": self.health,
            "hooks_run": self.hooks,
        }


class Tracker:
    """Progress of the syncs in this process, from the engine's events; bounded."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        self._lock = threading.Lock()

    def expect(self, sync_id: str, workflow_id: str, kind: str) -> RunState:
        with self._lock:
            run = self._runs[sync_id] = RunState(sync_id, workflow_id, kind)
            self._trim()
            return run

    def _trim(self) -> None:
        finished = [k for k, r in self._runs.items() if r.state == "finished"]
        for key in finished[: max(0, len(finished) - self.keep)]:
            del self._runs[key]

    def failed_to_start(self, sync_id: str, error: BaseException) -> None:
        with self._lock:
            run = self._runs.pop(sync_id, None)
        if run is not None and not run.claimed.done():
            run.claimed.set_exception(error)

    def get(self, sync_id: str) -> RunState | None:
        with self._lock:
            return self._runs.get(sync_id)

    def running(self) -> int:
        with self._lock:
            return sum(1 for r in self._runs.values() if r.state == "running")

    def listen(self, event: str, data: dict[str, Any]) -> None:
        sync_id = data.get("sync_id")
        if not sync_id:
            return
        with self._lock:
            run = self._runs.get(sync_id)
            if run is None:
                if event != "started":
                    return
                run = self._runs[sync_id] = RunState(sync_id, data.get("workflow", ""), data.get("kind", "sync"))
                self._trim()
            if event == "started":
                run.state, run.trigger = "running", data.get("trigger")
            elif event == "stage":
                run.stage = data.get("name")
            elif event == "planned":
                run.total = data.get("total")
            elif event == "applied":
                run.applied += 1
            elif event == "deleted":
                run.deleted += 1
            elif event == "hook":
                run.hooks += 1
            elif event == "health":
                run.health = {"healthy": data.get("healthy", 0), "total": data.get("total", 0)}
            elif event == "finished":
                run.state, run.status, run.message = "finished", data.get("status"), data.get("message")
            self._runs.move_to_end(sync_id)
        if event == "started" and not run.claimed.done():
            run.claimed.set_result(None)


def _view(run: RunState | None, record: dict[str, Any] | None, sync_id: str) -> dict[str, Any]:
    if record is not None and (record["status"] != "running" or run is None):
        status = record["status"]
    elif run is not None:
        status = run.status if run.state == "finished" and run.status else run.state
    else:
        status = "running"
    return {
        "id": sync_id,
        "workflow_id": record["workflow_id"] if record else run.workflow_id if run else None,
        "kind": record["kind"] if record else run.kind if run else None,
        "status": status,
        "done": status not in ("pending", "running"),
        "progress": run.progress() if run is not None else None,
        "result": record if record is not None and record["status"] != "running" else None,
    }


async def _start(ctx: Context, kind: str, workflow_id: str, who: Principal, work: Any) -> JSONResponse:
    sync_id = ctx.engine.new_sync_id(kind)
    run = ctx.tracker.expect(sync_id, workflow_id, kind)

    def target() -> None:
        try:
            work(sync_id)
        except BaseException as e:
            ctx.tracker.failed_to_start(sync_id, e)
            if not isinstance(e, SlipwayError):
                log.exception("%s %s of %s: unexpected error", kind, sync_id, workflow_id)

    if ctx.stopping.is_set():
        raise ApiError(503, "the server is stopping; nothing new starts")
    ctx.spawn(f"slipway-api-{kind}", target)
    try:
        await asyncio.wait_for(asyncio.wrap_future(run.claimed), CLAIM_WAIT)
    except TimeoutError:
        pass  # still waiting for the claim (a slow cluster connection): follow it by its id
    except SlipwayError as e:
        raise ApiError(status_of(e), describe(e), workflow_id=workflow_id) from None
    except Exception as e:
        raise ApiError(500, f"internal error: {describe(e)}") from None
    log.info("%s %s of %s started by %s", kind, sync_id, workflow_id, actor(who))
    view = _view(ctx.tracker.get(sync_id) or run, None, sync_id)
    return JSONResponse(view, status_code=202, headers={"Location": f"/api/v1/syncs/{sync_id}"})


@router.post("/workflows/{workflow_id}/sync", status_code=202, summary="Start a sync; 202 with its id")
async def start_sync(
    workflow_id: str,
    ctx: Ctx,
    who: Operator,
    body: Annotated[
        dict[str, Any] | None, Body(description='{"revision": commit, "expected_plan": fingerprint}')
    ] = None,
) -> JSONResponse:
    body = body or {}
    unknown = sorted(set(body) - {"revision", "expected_plan"})
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown key (known keys: expected_plan, revision)")
    for key in ("revision", "expected_plan"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ApiError(400, f"{key}: expected a string")

    def work(sync_id: str) -> None:
        ctx.engine.sync(
            workflow_id,
            revision=body.get("revision"),
            expected_plan=body.get("expected_plan"),
            cancel=ctx.cancel,
            sync_id=sync_id,
            actor=actor(who),
            admin=who.allows("admin"),  # only an admin may sync a revision off the tracked branch
        )

    return await _start(ctx, "sync", workflow_id, who, work)


@router.post("/workflows/{workflow_id}/rollback", status_code=202, summary="Start a rollback; 202 with its id")
async def start_rollback(
    workflow_id: str,
    body: Annotated[dict[str, Any], Body(description='{"reason": why (required), "to": a sync id}')],
    ctx: Ctx,
    who: Operator,
) -> JSONResponse:
    unknown = sorted(set(body) - {"reason", "to"})
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown key (known keys: reason, to)")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "reason: required (why, kept in the history)")
    to = body.get("to")
    if to is not None and not isinstance(to, str):
        raise ApiError(400, "to: expected a sync id")

    def work(sync_id: str) -> None:
        ctx.engine.rollback(workflow_id, reason.strip(), to=to, cancel=ctx.cancel, sync_id=sync_id, actor=actor(who))

    return await _start(ctx, "rollback", workflow_id, who, work)


@router.get("/syncs/{sync_id}", summary="A sync's progress, and its result once done")
def get_sync(sync_id: str, ctx: Ctx, who: Viewer) -> dict[str, Any]:
    del who
    run = ctx.tracker.get(sync_id)
    try:
        record: dict[str, Any] | None = asdict(ctx.engine.sync_record(sync_id))
    except SlipwayError as e:
        if run is None:
            raise ApiError(status_of(e), describe(e)) from None
        record = None  # named and about to start: not recorded yet
    return _view(run, record, sync_id)


__all__ = ["RunState", "Tracker", "router"]
