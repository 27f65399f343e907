"""Tokens and roles: every route against every role (a table), revocation, and slowing down guessers."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from .conftest import ROLES

pytestmark = pytest.mark.cluster

# (method, path, body, the least role that may, what that role gets). Ids that do not exist: past
# the guard, the engine answers 404 — which shows the guard let the call through.
ROUTES = [
    ("GET", "/api/v1/whoami", None, "viewer", 200),
    ("GET", "/api/v1/repositories", None, "viewer", 200),
    ("GET", "/api/v1/repositories/nope", None, "viewer", 404),
    ("GET", "/api/v1/workflows", None, "viewer", 200),
    ("GET", "/api/v1/workflows/nope", None, "viewer", 404),
    ("GET", "/api/v1/workflows/nope/history", None, "viewer", 404),
    ("GET", "/api/v1/workflows/nope/resources", None, "viewer", 404),
    ("GET", "/api/v1/syncs/sync-1-000000000000", None, "viewer", 404),
    ("GET", "/api/v1/sources", None, "viewer", 200),
    ("GET", "/api/v1/workflows/nope/diff", None, "viewer", 404),  # plans for operators; viewers read the last
    ("POST", "/api/v1/workflows/nope/sync", None, "operator", 404),
    ("POST", "/api/v1/workflows/nope/rollback", {"reason": "r"}, "operator", 404),
    ("POST", "/api/v1/workflows/nope/auto-sync", {"enabled": True}, "operator", 404),
    ("GET", "/api/v1/workflows/nope/actions?resource=Deployment/web", None, "operator", 404),
    ("POST", "/api/v1/workflows/nope/actions", {"resource": "Deployment/web", "action": "restart"}, "operator", 404),
    ("GET", "/api/v1/workflows/nope/tree", None, "viewer", 404),
    ("POST", "/api/v1/workflows/nope/unlock", None, "admin", 404),
    ("POST", "/api/v1/repositories", {"id": "r1", "url": "https://git.example.com/x.git"}, "admin", 201),
    ("DELETE", "/api/v1/repositories/nope", None, "admin", 404),
    ("POST", "/api/v1/workflows", {"id": "w1", "repository": "nope"}, "admin", 404),
    ("PATCH", "/api/v1/workflows/nope", {"auto_sync": True}, "admin", 404),
    ("DELETE", "/api/v1/workflows/nope", None, "admin", 404),
    ("GET", "/api/v1/tokens", None, "admin", 200),
    ("POST", "/api/v1/tokens", {"name": "made-by-api", "role": "viewer"}, "admin", 201),
    ("DELETE", "/api/v1/tokens/nope", None, "admin", 404),
]


def test_every_route_wants_a_token_and_a_role_that_is_enough(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    anonymous = server.client()
    forged = server.client(headers={"Authorization": "Bearer slw_000000000000_" + "x" * 43})
    # the table covers every /api/v1 route of the OpenAPI document (webhooks go by signature; events below)
    spec = anonymous.get("/openapi.json").json()
    for template, ops in spec["paths"].items():
        if not template.startswith("/api/v1/") or template.startswith(("/api/v1/webhooks/", "/api/v1/events")):
            continue
        pattern = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")
        for method in ops:
            assert any(m == method.upper() and pattern.match(p.split("?")[0]) for m, p, *_ in ROUTES), (
                method,
                template,
            )
    for method, path, body, least, allowed in ROUTES:
        for client, why in ((anonymous, "no token"), (forged, "unknown token")):
            r = client.request(method, path, json=body)
            assert r.status_code == 401, (method, path, why, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and r.json()["error"]
        for role in ROLES:
            r = server.client(role).request(method, path, json=body)
            if ROLES.index(role) < ROLES.index(least):
                assert r.status_code == 403, (method, path, role, r.text)
                assert f"needs {least}" in r.json()["error"]
            else:
                assert r.status_code == allowed, (method, path, role, r.text)
                if method != "GET" and allowed in (200, 201):
                    # undo what an allowed write did, so the next role gets the same answer
                    if path == "/api/v1/repositories":
                        server.client("admin").delete("/api/v1/repositories/r1")
                    if path == "/api/v1/tokens":
                        server.client("admin").delete("/api/v1/tokens/made-by-api")
    # the event stream too (not a plain request: it streams)
    with anonymous.stream("GET", "/api/v1/events") as r:
        assert r.status_code == 401
    with server.client("viewer").stream("GET", "/api/v1/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    # what needs no token: probes, metrics, the OpenAPI document
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert anonymous.get(path).status_code == 200, path


def test_a_revoked_token_is_refused_at_once(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    viewer = server.client("viewer")
    assert viewer.get("/api/v1/whoami").status_code == 200
    name = viewer.get("/api/v1/whoami").json()["name"]
    revoke = subprocess.run(
        [sys.executable, "-m", "slipway", "token", "revoke", name], env=server.env, capture_output=True, text=True
    )
    assert revoke.returncode == 0, revoke.stderr
    r = viewer.get("/api/v1/whoami")
    assert r.status_code == 401 and r.json()["error"] == "invalid or revoked token"


def test_repeated_failures_are_slowed_down_and_a_success_clears_them(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    guesser = server.client(headers={"Authorization": "Bearer slw_000000000000_" + "g" * 43})
    took = []
    for _ in range(9):
        started = time.monotonic()
        assert guesser.get("/api/v1/whoami").status_code == 401
        took.append(time.monotonic() - started)
    assert max(took[:5]) < 0.5
    assert took[8] >= 0.8  # the 9th waits 0.1 s * 2^3
    good = server.client("viewer")
    assert good.get("/api/v1/whoami").status_code == 200  # the same client: held back too, but let in
    started = time.monotonic()
    other = server.client(headers={"Authorization": "Bearer slw_111111111111_" + "h" * 43})
    assert other.get("/api/v1/whoami").status_code == 401
    assert time.monotonic() - started < 0.5  # the client's counting starts again
    started = time.monotonic()
    assert guesser.get("/api/v1/whoami").status_code == 401
    assert time.monotonic() - started >= 1.0  # the token name guessed at is still held back
