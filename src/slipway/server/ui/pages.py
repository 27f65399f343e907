"""The dashboard's pages: log in, log out, the overview and a workflow's page.

Each page is a Jinja2 template (autoescaped) that lays the page out and names who is logged in;
its script reads the API for the rest. A page asked for without a session goes to the login
form, which comes back to it after. Logging in and out are HTML forms posted here: the login
checks the token as the API does (slowing down a client or a token name that keeps failing), and
answers with the session cookie (``Secure`` over HTTPS, when a trusted proxy says the browser
used HTTPS, or always with ``--secure-cookies``); both refuse a request from another site.
"""

from __future__ import annotations

import hmac
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ...results import HEALTH_STATUSES, SYNC_STATUSES
from ..auth import ROLES, Principal, authenticate_token
from ..context import ApiError, Context
from .sessions import COOKIE, Session, Sessions, check_same_origin

log = logging.getLogger("slipway.server")

router = APIRouter(include_in_schema=False)

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

_LOCAL_PATH = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def _next(value: str | None) -> str:
    """Where to go after logging in: a path of this server, never another site."""
    return value if value and _LOCAL_PATH.match(value) else "/"


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(request=request, **context)
    return HTMLResponse(html, status_code=status)


async def _session(request: Request) -> Session | None:
    """The request's live session whose token is still valid; None otherwise."""
    sessions: Sessions = request.app.state.sessions
    session_id = request.cookies.get(COOKIE)
    session = await run_in_threadpool(sessions.get, session_id)
    if session is None:
        return None
    ctx: Context = request.app.state.slipway
    who: Principal | None = await run_in_threadpool(sessions.check, session, ctx.engine)
    if who is None:
        await run_in_threadpool(sessions.drop, session_id)
        return None
    session.role = who.role
    return session


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def _page(request: Request, template: str, session: Session, **context: Any) -> HTMLResponse:
    return _render(
        request,
        template,
        who=session,
        csrf=session.csrf,
        can_operate=ROLES.index(session.role) >= ROLES.index("operator"),
        **context,
    )


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login(request)
    ctx: Context = request.app.state.slipway
    form = await run_in_threadpool(overview_filters, ctx, request.query_params.multi_items())
    return _page(request, "overview.html", session, title="Workflows", filters=form)


def overview_filters(ctx: Context, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The overview's filter form: what the URL asks (shown back, escaped) and the choices there are.
    The list itself is the API's, filtered by the same function (the page's script passes the
    query on)."""
    form = ctx.engine.workflow_filters(pairs)
    return {**form, "sync_words": SYNC_STATUSES, "health_words": HEALTH_STATUSES}


@router.get("/workflows/{workflow_id}", response_class=HTMLResponse)
async def workflow(request: Request, workflow_id: str) -> Response:
    session = await _session(request)
    if session is None:
        return _to_login(request)
    return _page(request, "workflow.html", session, title=workflow_id, workflow_id=workflow_id)


@router.get("/workflows/{workflow_id}/syncs/{sync_id}", response_class=HTMLResponse)
async def sync_page(request: Request, workflow_id: str, sync_id: str) -> Response:
    """What one sync changed, as recorded: the history's link to that sync's diff."""
    session = await _session(request)
    if session is None:
        return _to_login(request)
    return _page(request, "sync.html", session, title=f"{sync_id} of {workflow_id}", workflow_id=workflow_id,
                 sync_id=sync_id)  # fmt: skip


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    target = _next(request.query_params.get("next"))
    if await _session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _render(request, "login.html", next=target, title="Log in")


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise ApiError(415, "send the form as application/x-www-form-urlencoded")
    fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if v}


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    check_same_origin(request)  # no one logs a browser in from another site
    form = await _form(request)
    target = _next(form.get("next"))
    token = form.get("token", "").strip()
    ctx: Context = request.app.state.slipway
    if not token:
        return _render(request, "login.html", 401, next=target, title="Log in", error="Enter a token.")
    try:
        who = await authenticate_token(request, ctx, token)  # throttled as the API is: per client and name
    except ApiError as e:
        error = ("Too many failed attempts from this client or with this token; try again later."
                 if e.status_code == 429 else "That token is not valid (unknown or revoked).")  # fmt: skip
        return _render(request, "login.html", e.status_code, next=target, title="Log in", error=error)
    sessions: Sessions = request.app.state.sessions
    # A new id on every login: an old cookie never carries over.
    await run_in_threadpool(sessions.drop, request.cookies.get(COOKIE))
    session_id, _ = await run_in_threadpool(sessions.create, token, who)
    log.info("token:%s logged in to the dashboard (%s)", who.name, who.role)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(sessions.lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


def _secure(request: Request) -> bool:
    """HTTPS as the browser sees it: served so, said so by a trusted proxy, or set (--secure-cookies)."""
    ctx: Context = request.app.state.slipway
    return ctx.secure_cookies or request.url.scheme == "https"


@router.post("/logout")
async def logout(request: Request) -> Response:
    check_same_origin(request)
    form = await _form(request)
    sessions: Sessions = request.app.state.sessions
    session_id = request.cookies.get(COOKIE)
    session = await run_in_threadpool(sessions.get, session_id)
    if session is not None:
        if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
            raise ApiError(403, "missing or wrong CSRF token for this session")
        await run_in_threadpool(sessions.drop, session_id)
        log.info("token:%s logged out of the dashboard", session.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
    return response


__all__ = ["router", "templates"]
