"""The app factory and the process: FastAPI on uvicorn, with the controller in the same process.

:func:`build` wires one engine to everything the server does — the auto-sync controller, the
sync tracker, the event stream, metrics and notifications, all fed by the engine's events — and
:func:`create_app` puts the routes on it: ``/api/v1/...`` (bearer tokens), the webhooks
(signatures), ``/metrics``, ``/healthz``, ``/readyz`` and ``/openapi.json``. ``/`` is for a
dashboard: pass ``ui=`` a function that mounts one (slipway's own is :func:`slipway.server.ui.mount`);
it is called after every other route is in place, so those always win.

Every request goes through one ASGI guard: its body may not exceed 1 MiB (413, checked as it
streams in, not only by Content-Length), and it is counted by route template and status. Every
error is JSON, ``{"error": ..., "status": ...}``; a validation error never echoes the input.

:func:`serve` runs it: SIGTERM (or Ctrl-C) stops taking connections, cancels syncs at their next
safe point (the controller's cancel event), waits for them to record themselves, and exits 0.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..controller import Controller
from ..engine import Engine
from ..errors import ConfigError, SlipwayError, describe
from . import actions, api, events, runs, sources, webhooks
from .auth import Throttle, authenticate, bearer
from .context import ApiError, BodyTooLarge, Context, Ctx, status_of
from .feed import Feed
from .metrics import Metrics
from .notifications import Notifier
from .revocation import Revocations

log = logging.getLogger("slipway.server")

SHUTDOWN_WAIT = 120.0  # seconds a stopping server waits for syncs to reach a safe point and record
METRICS_ACCESS = ("open", "token", "off")  # /metrics: for anyone, for any valid token, not served


def build(
    engine: Engine,
    *,
    controller: bool = True,
    concurrency: int = 16,
    webhook_secret: bytes | None = None,
    notifications: bool = True,
    shards: int | None = None,
    identity: str | None = None,
    metrics_access: str = "open",
    secure_cookies: bool = False,
) -> Context:
    if metrics_access not in METRICS_ACCESS:
        raise ConfigError(f"--metrics: {metrics_access!r} is not one of {', '.join(METRICS_ACCESS)}")
    ctl = Controller(engine, concurrency=concurrency, shards=shards, identity=identity) if controller else None
    metrics = Metrics(engine, ctl)

    def workflows_of(repo_id: str) -> list[str]:
        return [wf.id for wf in engine.workflows() if wf.repository == repo_id]

    return Context(
        engine=engine,
        controller=ctl,
        tracker=runs.Tracker(),
        hub=events.Hub(workflows_of=workflows_of),
        metrics=metrics,
        notifier=Notifier(engine, metrics=metrics) if notifications else None,
        sources=sources.Sources(engine),
        webhook_secret=webhook_secret,
        metrics_access=metrics_access,
        secure_cookies=secure_cookies,
    )


def _safe(listener: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
    """A listener the event bus never drops: a failure is logged, and the next event still comes."""

    def call(event: str, data: dict[str, Any]) -> None:
        try:
            listener(event, data)
        except Exception:
            log.exception("server: handling the %s event failed", event)

    return call


def create_app(ctx: Context, *, ui: Callable[[FastAPI], None] | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = ctx.engine.events
        listeners = [ctx.tracker.listen, ctx.hub.listen, ctx.metrics.listen]
        if ctx.sources is not None:
            listeners.append(ctx.sources.listen)
        stops = [bus.subscribe(_safe(fn)) for fn in listeners]
        stops.append(
            Feed(ctx.engine.replicas.sync_feed, _safe(ctx.hub.listen)).start().stop
        )  # syncs other processes run
        if ctx.notifier is not None:
            ctx.notifier.start()
        if ctx.controller is not None:
            ctx.controller.start()
        log.info("slipway server ready")
        try:
            yield
        finally:
            ctx.begin_shutdown()
            await run_in_threadpool(_stop, ctx)
            for stop in stops:
                stop()

    app = FastAPI(
        title="slipway",
        summary="GitOps for Kubernetes: repositories, workflows, diffs, syncs, rollbacks and their history",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.slipway = ctx
    app.state.throttle = Throttle()
    app.state.revocations = Revocations(ctx.engine)
    for router in (api.router, actions.router, runs.router, events.router, sources.router, webhooks.router):
        app.include_router(router)
    _probes(app)
    _errors(app)
    app.add_middleware(Guard, ctx=ctx)
    if ui is not None:
        ui(app)
    return app


def _stop(ctx: Context) -> None:
    if ctx.controller is not None:
        ctx.controller.stop(SHUTDOWN_WAIT)
    ctx.join(SHUTDOWN_WAIT)
    if ctx.notifier is not None:
        ctx.notifier.stop(5.0)
    if ctx.sources is not None:
        ctx.sources.close()
    log.info("slipway server stopped")


def _probes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["probes"], summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="Ready for work: the store answers and the controller runs")
    async def readyz(ctx: Ctx) -> JSONResponse:
        problems = []
        if ctx.stopping.is_set():
            problems.append("stopping")
        if ctx.controller is not None and not ctx.controller.running and not ctx.stopping.is_set():
            problems.append("the controller is not running")
        try:
            await run_in_threadpool(ctx.engine.config_version)
        except Exception as e:
            problems.append(f"the state store does not answer: {describe(e)}")
        if problems:
            return JSONResponse({"status": "not ready", "error": "; ".join(problems)}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics (text format); with --metrics token, any valid token",
        response_class=Response,
    )
    async def metrics(request: Request, ctx: Ctx) -> Response:
        if ctx.metrics_access == "off":
            raise ApiError(404, "metrics are off on this server (slipway server --metrics off)")
        if ctx.metrics_access == "token":
            await authenticate(request, ctx, "viewer", await bearer(request))
        ctx.metrics.events_dropped.set(ctx.hub.dropped_total)
        return Response(await run_in_threadpool(ctx.metrics.render), media_type=CONTENT_TYPE_LATEST)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "status": exc.status_code}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never the input itself: it may be a secret sent to the wrong field.
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"error": f"{where}: {first['msg']}" if where else first["msg"], "status": 422,
                             "details": details}, status_code=422)  # fmt: skip

    @app.exception_handler(SlipwayError)
    async def engine_error(request: Request, exc: SlipwayError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, describe(exc))
        return JSONResponse({"error": describe(exc), "status": status}, status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}", "status": 500}, status_code=500)


class Guard:
    """Every HTTP request: its body at most ``max_body`` bytes, and its metrics."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.ctx.max_body
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        too_big = declared is not None and (not declared.isdigit() or int(declared) > limit)
        received = 0
        status = 500
        started = time.perf_counter()

        async def limited() -> Message:
            nonlocal received
            if too_big:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics = self.ctx.metrics
            metrics.requests.labels(scope.get("method", ""), route, str(status)).inc()
            metrics.request_seconds.labels(route).observe(time.perf_counter() - started)


# -- the process ---------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ctx: Context) -> None:
        super().__init__(config)
        self.ctx = ctx

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.ctx.stopping.is_set():
            log.info("received %s: no new requests; syncs stop at their next safe point", signal.Signals(sig).name)
        # At once, not after the open connections drain: a sync must not go on for minutes.
        self.ctx.begin_shutdown()
        super().handle_exit(sig, frame)


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:8420``, ``[::1]:8420`` or ``:8420`` (loopback) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen: {listen!r} is not HOST:PORT (e.g. 127.0.0.1:8420)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def trusted_proxies(values: tuple[str, ...] | list[str]) -> list[str]:
    """``--forwarded-allow-ips`` (repeated or comma-separated): IP addresses, networks, or ``*``."""
    out: list[str] = []
    for value in values:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            if item != "*":
                try:
                    item = str(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ConfigError(
                        f"--forwarded-allow-ips: {item!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                    ) from None
                # a single address stays one: uvicorn compares addresses and networks apart
                item = item.removesuffix("/32") if "." in item else item.removesuffix("/128")
            out.append(item)
    return ["*"] if "*" in out else out


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"--listen: cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    app: FastAPI,
    ctx: Context,
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    forwarded_allow_ips: list[str] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT; raises ConfigError for an address or a certificate that cannot be used.

    ``forwarded_allow_ips``: the proxies whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are
    believed (addresses or networks, see :func:`trusted_proxies`); every other peer's are ignored.
    """
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
    if tls_cert and tls_key:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"--tls-cert/--tls-key: cannot load them: {describe(e)}") from None
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=True,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        timeout_graceful_shutdown=30,
        server_header=False,
        # uvicorn's own middleware: the client and scheme become what a trusted proxy says, for
        # every part of the server alike (throttling, the session cookie, the request log).
        proxy_headers=bool(forwarded_allow_ips),
        forwarded_allow_ips=list(forwarded_allow_ips) if forwarded_allow_ips else None,
        lifespan="on",
    )
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    log.info("slipway server listening on %s://%s:%d", scheme, shown, port)
    # uvicorn raises the signal again once it has shut down; this handler makes that a clean exit.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _Server(config, ctx).run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()


__all__ = ["METRICS_ACCESS", "build", "create_app", "parse_listen", "serve", "trusted_proxies"]
