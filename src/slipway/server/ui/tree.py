"""The resource tree page: a workflow's objects with what their controllers made, rendered on the server.

Read from the cluster when the page is asked for (the engine's :meth:`tree`) and laid out by a
Jinja2 template with autoescaping, so nothing from the cluster is ever parsed as HTML. An
operator sees each object's actions as buttons; ``tree.js`` asks to confirm (with the action's
parameters) and posts to the API with the session's CSRF token.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ...errors import SlipwayError, describe
from ..context import Context
from .pages import _page, _session, _to_login

router = APIRouter(include_in_schema=False)

HEALTH_BADGE = {"Healthy": "good", "Progressing": "busy", "Degraded": "bad", "Missing": "bad", "Suspended": "warn"}


@router.get("/workflows/{workflow_id}/tree", response_class=HTMLResponse)
async def tree_page(request: Request, workflow_id: str) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login(request)
    ctx: Context = request.app.state.slipway
    error, nodes = "", []
    try:
        nodes = await run_in_threadpool(ctx.engine.tree, workflow_id)
    except SlipwayError as e:
        error = describe(e)
    return _page(request, "tree.html", session, title=f"{workflow_id}: resource tree", workflow_id=workflow_id,
                 nodes=nodes, error=error, badge=HEALTH_BADGE)  # fmt: skip


__all__ = ["router"]
