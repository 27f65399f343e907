"""``slipway server``: the controller and the HTTP API (webhooks, metrics, events) in one process.

Loopback by default; ``--tls-cert``/``--tls-key`` for TLS. The webhook secret comes from
``SLIPWAY_WEBHOOK_SECRET`` or ``--webhook-secret-file``, never from the command line (where
``ps`` would show it). Behind a reverse proxy, ``--forwarded-allow-ips`` names it: only its
``X-Forwarded-For``/``X-Forwarded-Proto`` are believed. SIGTERM or Ctrl-C stops it cleanly: syncs stop at their next safe point
and are recorded before it exits.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import click

from ..errors import ConfigError
from .common import engine
from .output import err_console

SECRET_ENV = "SLIPWAY_WEBHOOK_SECRET"


def webhook_secret(path: str | None) -> bytes | None:
    """The webhook secret from the file given, else from SLIPWAY_WEBHOOK_SECRET; None: webhooks are off."""
    if path:
        p = Path(path).expanduser()
        try:
            text = p.read_text()
        except OSError as e:
            raise ConfigError(f"--webhook-secret-file: cannot read {p}: {e.strerror or e}") from None
        if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            err_console().print(f"[yellow]warning:[/yellow] {p} can be read by others; chmod 600 it", markup=True)
        secret = text.strip()
        if not secret:
            raise ConfigError(f"--webhook-secret-file: {p} is empty")
        return secret.encode()
    # Taken out of the environment once read: no hook, git or helm process started later inherits it.
    value = os.environ.pop(SECRET_ENV, "").strip()
    return value.encode() if value else None


@click.command("server")
@click.option(
    "--listen",
    default="127.0.0.1:8420",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on (loopback unless you say otherwise).",
)
@click.option("--tls-cert", metavar="FILE", help="PEM certificate (chain) for HTTPS; needs --tls-key.")
@click.option("--tls-key", metavar="FILE", help="PEM private key for HTTPS.")
@click.option(
    "--webhook-secret-file",
    metavar="FILE",
    help=f"File holding the push webhooks' secret (default: ${SECRET_ENV}; webhooks are off without one).",
)
@click.option("--concurrency", type=int, default=16, show_default=True, help="Workflows the controller syncs at once.")
@click.option("--no-controller", is_flag=True, help="Serve the API only; another process runs the controller.")
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    help="Run the controller as one of several replicas sharing this many shards (SLIPWAY_STORE=kubernetes).",
)
@click.option("--identity", help="This replica's name in the shard Leases (default: host name and pid).")
@click.option(
    "--forwarded-allow-ips",
    "forwarded_allow_ips",
    multiple=True,
    metavar="ADDR",
    help="A reverse proxy (IP address or network; repeat or comma-separate) whose X-Forwarded-For and "
    "X-Forwarded-Proto are believed. Default: none; every peer is the client.",
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Mark the dashboard's session cookie Secure even over plain HTTP (behind a TLS proxy).",
)
@click.option(
    "--metrics",
    "metrics_access",
    type=click.Choice(["open", "token", "off"]),
    default="open",
    show_default=True,
    help="/metrics for anyone, only with a valid API token (any role), or not served.",
)
def server(
    listen: str,
    tls_cert: str | None,
    tls_key: str | None,
    webhook_secret_file: str | None,
    concurrency: int,
    no_controller: bool,
    shards: int | None,
    identity: str | None,
    forwarded_allow_ips: tuple[str, ...],
    secure_cookies: bool,
    metrics_access: str,
) -> None:
    """Run the auto-sync controller and serve the web dashboard, the HTTP API, webhooks and /metrics until SIGTERM."""
    from ..server.app import build, create_app, parse_listen, serve, trusted_proxies
    from ..server.ui import mount as dashboard

    # A daemon's log is its output: requests, syncs and their outcomes.
    logging.getLogger("slipway").setLevel(min(logging.getLogger().level, logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(min(logging.getLogger().level, logging.INFO))
    if concurrency < 1:
        raise ConfigError("--concurrency: must be 1 or more")
    host, port = parse_listen(listen)
    proxies = trusted_proxies(forwarded_allow_ips)
    secret = webhook_secret(webhook_secret_file)
    if shards is not None and no_controller:
        raise ConfigError("--shards: shards are the controller's; this server runs none (--no-controller)")
    ctx = build(engine(), controller=not no_controller, concurrency=concurrency, webhook_secret=secret,
                shards=shards, identity=identity, metrics_access=metrics_access,
                secure_cookies=secure_cookies)  # fmt: skip
    if secret is None:
        err_console().print(f"webhooks are off (set {SECRET_ENV} or --webhook-secret-file to turn them on)")
    serve(create_app(ctx, ui=dashboard), ctx, host, port, tls_cert=tls_cert, tls_key=tls_key,
          forwarded_allow_ips=proxies)  # fmt: skip
