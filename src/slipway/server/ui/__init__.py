"""The web dashboard at ``/``: pages rendered by Jinja2, a little plain JavaScript, the API underneath.

The pages are a client of the server's own API, as any script is: the templates lay out each
page (and say who is logged in), and the scripts in ``static/`` read ``/api/v1/...`` and follow
``/api/v1/events``, building every element with ``textContent`` — nothing from a repository or
the cluster is ever parsed as HTML. A login turns an API token into a server-side session
(:mod:`.sessions`): the browser holds only an HttpOnly cookie, which the API accepts in place of
a bearer token, with a CSRF token and an Origin check on every request that changes something.
Every asset is served from here (no CDN, nothing fetched elsewhere), and a Content-Security-Policy
lets the pages load scripts, styles and data from this server only.

``create_app(ctx, ui=mount)`` plugs it in (``slipway server`` does).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import pages, tree
from .sessions import Sessions

STATIC = Path(__file__).parent / "static"

# Scripts, styles, images and connections from this server only; no inline script, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def mount(app: FastAPI, sessions: Sessions | None = None) -> None:
    """Serve the dashboard on ``app`` (the ``ui=`` of :func:`slipway.server.app.create_app`)."""
    ctx = getattr(app.state, "slipway", None)
    # In the store: a session made on one server replica works on every other.
    app.state.sessions = sessions or Sessions(store=ctx.engine.replicas.session_rows() if ctx is not None else None)
    app.include_router(pages.router)
    app.include_router(tree.router)
    app.mount("/assets", StaticFiles(directory=STATIC), name="assets")
    app.add_middleware(SecurityHeaders)


class SecurityHeaders:
    """Headers every page and asset gets (the API's JSON answers are left as they are)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path or path.startswith("/api/") or path in ("/metrics", "/healthz", "/readyz", "/openapi.json"):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    # Pages say who is logged in and hold the CSRF token: never cached; assets may be.
                    (b"cache-control", b"no-cache" if path.startswith("/assets/") else b"no-store"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


__all__ = ["CSP", "SecurityHeaders", "mount"]
