"""The session table and the same-origin rule, on their own (no server, no browser)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from starlette.requests import Request

from slipway.server.context import ApiError
from slipway.server.ui.sessions import Sessions, check_same_origin


@dataclass
class Who:
    name: str = "ops"
    role: str = "operator"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_when_idle_and_at_its_lifetime_whatever_happens() -> None:
    clock = Clock()
    sessions = Sessions(lifetime=100.0, idle=30.0, clock=clock)
    sid, session = sessions.create("slw_token", Who())
    assert sessions.get(sid) is session and session.csrf and session.csrf != sid
    clock.now += 29
    assert sessions.get(sid) is session  # used: the idle time starts again
    clock.now += 29
    assert sessions.get(sid) is session
    clock.now += 31
    assert sessions.get(sid) is None and len(sessions) == 0  # idle too long, and forgotten

    sid, session = sessions.create("slw_token", Who())
    for _ in range(4):
        clock.now += 25
        assert sessions.get(sid) is session
    clock.now += 1
    assert sessions.get(sid) is None  # 101 s after login, however busy
    assert sessions.get("") is None and sessions.get("made-up") is None


def test_ids_are_random_kept_only_as_hashes_and_dropped_on_logout() -> None:
    sessions = Sessions()
    a, _ = sessions.create("slw_token", Who())
    b, _ = sessions.create("slw_token", Who())
    assert a != b and len(a) >= 40
    assert all(a not in key and b not in key for key in sessions._table)
    sessions.drop(a)
    assert sessions.get(a) is None and sessions.get(b) is not None


def request(method: str = "POST", **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": method, "scheme": "http", "path": "/", "headers": raw,
                    "server": ("127.0.0.1", 8420), "query_string": b""})  # fmt: skip


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"host": "127.0.0.1:8420", "origin": "http://127.0.0.1:8420"}, True),
        ({"host": "127.0.0.1:8420", "origin": "http://127.0.0.1:8420", "sec_fetch_site": "same-origin"}, True),
        ({"host": "slipway.example", "origin": "https://slipway.example"}, True),  # TLS ended by a proxy
        ({"host": "127.0.0.1:8420", "origin": "http://127.0.0.1:9999"}, False),  # same site, another origin
        ({"host": "127.0.0.1:8420", "origin": "http://localhost:8420"}, False),
        ({"host": "slipway.example", "origin": "https://slipway.example:8443"}, False),
        ({"host": "127.0.0.1:8420"}, False),  # no Origin
        ({"host": "127.0.0.1:8420", "origin": "null"}, False),  # a sandboxed frame, a data: URL
        ({"host": "127.0.0.1:8420", "origin": "http://127.0.0.1:8420", "sec_fetch_site": "same-site"}, False),
        ({"host": "127.0.0.1:8420", "origin": "http://127.0.0.1:99999"}, False),  # malformed
    ],
)
def test_same_origin(headers: dict[str, str], ok: bool) -> None:
    if ok:
        check_same_origin(request(**headers))
    else:
        with pytest.raises(ApiError) as e:
            check_same_origin(request(**headers))
        assert e.value.status_code == 403
