"""The server's parts that need no network: tokens in a real store, URL masking and matching,
webhook signatures, the failure throttle and the event stream's bounded buffers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from slipway.engine import Engine
from slipway.errors import ConfigError, NotFoundError
from slipway.model import Workflow
from slipway.notify import mask_url
from slipway.server.auth import Throttle
from slipway.server.events import Hub, stream
from slipway.server.webhooks import Provider, normalize_url, push_of, verify
from slipway.source import GitSource
from slipway.store import Store


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(Store(home=tmp_path), GitSource(cache_dir=tmp_path / "git", home=tmp_path))


def test_a_token_is_checked_by_its_hash_and_revoked_at_once(engine: Engine, tmp_path: Path) -> None:
    token, secret = engine.create_token("ci", "operator", created_by="user:alice")
    assert secret.startswith(f"slw_{token.id}_") and len(secret) > 50
    who = engine.authenticate(secret)
    assert who is not None and (who.name, who.role) == ("ci", "operator")
    assert who.allows("viewer") and who.allows("operator") and not who.allows("admin")
    assert engine.authenticate(secret) is not None  # the cached path
    for wrong in ("", "slw_", secret[:-1] + ("A" if secret[-1] != "A" else "B"), secret + "x", "Bearer " + secret,
                  f"slw_{'0' * 12}_{secret.split('_', 2)[2]}"):  # fmt: skip
        assert engine.authenticate(wrong) is None, wrong
    other = Engine(Store(home=tmp_path), GitSource(cache_dir=tmp_path / "git", home=tmp_path))
    other.revoke_token("ci")  # another process's engine, same store
    assert engine.authenticate(secret) is None
    with pytest.raises(NotFoundError, match="token 'ci' does not exist"):
        engine.revoke_token("ci")


def test_tokens_keep_only_a_salted_hash(engine: Engine, tmp_path: Path) -> None:
    _, one = engine.create_token("one", "viewer")
    _, two = engine.create_token("two", "viewer")
    with pytest.raises(ConfigError, match="already exists"):
        engine.create_token("one", "admin")
    with pytest.raises(ConfigError, match="role: 'root' is not one of viewer, operator, admin"):
        engine.create_token("three", "root")
    rows = (
        sqlite3.connect(tmp_path / "state.db").execute("SELECT name, salt, hash FROM tokens ORDER BY name").fetchall()
    )
    assert [r[0] for r in rows] == ["one", "two"]
    assert rows[0][1] != rows[1][1] and rows[0][2] != rows[1][2]
    for secret in (one, two):
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
        assert secret.encode() not in raw and secret.split("_", 2)[2].encode() not in raw
    listed = [t.public() for t in engine.tokens()]
    assert [t["name"] for t in listed] == ["one", "two"] and all("secret" not in str(t) for t in listed)


def test_mask_url_hides_everything_that_may_be_a_credential() -> None:
    assert mask_url("https://hooks.slack.com/services/T0/B0/XyZ") == "https://hooks.slack.com/services/***"
    assert mask_url("https://u:p@example.com:8443/hook?token=abc#x") == "https://***@example.com:8443/hook?***#***"
    assert mask_url("http://127.0.0.1:9000/notify") == "http://127.0.0.1:9000/notify"
    assert mask_url("http://[::1]:bad/x") == "***"


def test_notify_settings_are_checked_and_never_echo_the_url() -> None:
    secret_url = "https://hooks.example.com/services/SECRET-TOKEN"
    wf = Workflow.from_config({"id": "w", "repository": "r", "notify": {"url": secret_url}})
    assert wf.notify is not None and wf.notify.events == ["failed", "refused", "degraded", "rolled_back"]
    assert wf.public()["notify"] == {"url": "https://hooks.example.com/services/***", "events": wf.notify.events}
    bad = [
        ({"url": "ftp://x/SECRET"}, "must be an http:// or https:// URL"),
        ({"events": ["failed"]}, "notify.url: required"),
        ({"url": secret_url, "events": ["sometimes"]}, "notify.events[1]: 'sometimes' is not one of"),
        ({"url": secret_url, "evnets": ["failed"]}, "notify.evnets: unknown key"),
    ]
    for notify, message in bad:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as e:
            Workflow.from_config({"id": "w", "repository": "r", "notify": notify})
        assert "SECRET" not in str(e.value)


def test_webhook_urls_match_however_they_are_written() -> None:
    same = [
        "https://GitHub.com/Team/App.git",
        "http://github.com/team/app",
        "https://user:pw@github.com:443/team/app.git/",
        "git@github.com:team/app.git",
        "ssh://git@github.com/team/app.git",
        "git://github.com/team/app.git",
    ]
    assert {normalize_url(u) for u in same} == {"github.com/team/app"}
    assert normalize_url("https://github.com:8443/team/app") == "github.com:8443/team/app"
    assert normalize_url("https://github.com/team/app2") != normalize_url("https://github.com/team/app")


def test_webhook_signatures_per_provider() -> None:
    secret, body = b"s3cret", b'{"ref": "refs/heads/main"}'
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    good = {
        Provider.github: {"x-hub-signature-256": f"sha256={digest}"},
        Provider.gitea: {"x-gitea-signature": digest},
        Provider.bitbucket: {"x-hub-signature": f"sha256={digest}"},
        Provider.gitlab: {"x-gitlab-token": "s3cret"},
    }
    for provider, headers in good.items():
        assert verify(provider, secret, headers, body), provider
        if provider is not Provider.gitlab:  # GitLab's shared token names the sender; it signs no body
            assert not verify(provider, secret, headers, body + b" "), provider  # the body changed
        assert not verify(provider, b"other", headers, body), provider  # another secret
        assert not verify(provider, secret, {}, body), provider  # no signature at all
    assert not verify(Provider.github, secret, {"x-hub-signature-256": digest}, body)  # no sha256= prefix


def test_push_payloads_of_each_provider() -> None:
    github = {"ref": "refs/heads/main", "repository": {"clone_url": "https://h/t/a.git", "ssh_url": "git@h:t/a.git"}}
    assert push_of(Provider.github, github) == (["https://h/t/a.git", "git@h:t/a.git"], {"main"})
    gitlab = {"ref": "refs/heads/dev", "project": {"git_http_url": "https://h/t/a.git"}}
    assert push_of(Provider.gitlab, gitlab) == (["https://h/t/a.git"], {"dev"})
    bitbucket = {
        "repository": {"links": {"clone": [{"href": "ssh://git@h:7999/t/a.git", "name": "ssh"}]}},
        "changes": [
            {"ref": {"id": "refs/heads/main", "type": "BRANCH"}},
            {"ref": {"id": "refs/tags/v1", "type": "TAG"}},
        ],
    }
    assert push_of(Provider.bitbucket, bitbucket) == (["ssh://git@h:7999/t/a.git"], {"main"})
    tag = {"ref": "refs/tags/v1", "repository": {"clone_url": "https://h/t/a.git"}}
    assert push_of(Provider.gitea, tag)[1] == set()


def test_the_throttle_slows_repeated_failures_and_stays_bounded() -> None:
    t = Throttle(capacity=100)
    for _ in range(Throttle.SLOW_AFTER):
        assert t.verdict("10.0.0.1") == (0.0, None)
        t.failed("10.0.0.1")
    assert t.verdict("10.0.0.1")[0] == pytest.approx(0.1)
    for _ in range(3):
        t.failed("10.0.0.1")
    assert t.verdict("10.0.0.1")[0] == pytest.approx(0.8)
    for _ in range(100):
        t.failed("10.0.0.1")
    assert "from this client" in str(t.verdict("10.0.0.1")[1])  # refused outright
    assert t.verdict("10.0.0.2") == (0.0, None)  # another client is not held back by it
    t.succeeded("10.0.0.1")
    assert t.verdict("10.0.0.1") == (0.0, None)
    for i in range(1000):
        t.failed(f"10.1.{i // 256}.{i % 256}")
    assert len(t) == 100


def test_failures_at_one_token_name_hold_back_that_name_only() -> None:
    t = Throttle()
    for i in range(Throttle.REFUSE_AFTER):
        t.failed(f"10.2.0.{i}", "aaaaaaaaaaaa")  # a different client each time
    assert "with this token's name" in str(t.verdict("10.3.0.1", "aaaaaaaaaaaa")[1])
    assert t.verdict("10.3.0.1", "bbbbbbbbbbbb") == (0.0, None)
    assert t.verdict("10.2.0.1", "bbbbbbbbbbbb") == (0.0, None)  # each of those clients failed once only
    t.succeeded("10.3.0.1", "aaaaaaaaaaaa")
    assert t.verdict("10.3.0.1", "aaaaaaaaaaaa") == (0.0, None)


def test_a_slow_event_client_loses_events_and_is_told_and_never_blocks_the_publisher() -> None:
    hub = Hub(capacity=5)
    loop = asyncio.new_event_loop()
    try:
        client = hub.connect(loop, None)
        assert client is not None
        started = time.monotonic()
        publisher = threading.Thread(
            target=lambda: [hub.listen("applied", {"workflow": "w", "sync_id": "s", "n": i}) for i in range(20_000)]
        )
        publisher.start()
        publisher.join(10)
        assert time.monotonic() - started < 5  # nobody read, and the publisher never waited
        assert hub.dropped_total == 20_000 - 5

        async def read(n: int) -> list[dict[str, str]]:
            out = []
            agen = stream(hub, client)
            async for message in agen:
                out.append(message)
                if len(out) == n:
                    break
            await agen.aclose()
            return out

        messages = loop.run_until_complete(read(7))
        assert [m["event"] for m in messages] == [
            "hello",
            "dropped",
            "applied",
            "applied",
            "applied",
            "applied",
            "applied",
        ]
        assert '"dropped": 19995' in messages[1]["data"]
        assert not hub.clients  # closing the stream disconnects the client
    finally:
        loop.close()


def test_a_notify_url_is_stored_encrypted_and_read_back_whole(engine: Engine, tmp_path: Path) -> None:
    url = "https://chat.example.com/hooks/deploys/VERYSECRETPART?sig=ALSOSECRET"
    engine.register_repository({"id": "r", "url": "https://git.example.com/r.git"})
    engine.create_workflow({"id": "w", "repository": "r", "notify": {"url": url, "events": ["failed"]}})
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"VERYSECRETPART" not in raw and b"ALSOSECRET" not in raw
    wf = engine.workflow("w")
    assert wf.notify is not None and wf.notify.url == url
    _, changed = engine.update_workflow("w", {"notify": {"events": ["failed", "succeeded"]}})
    assert changed.notify is not None and changed.notify.url == url
    assert engine.update_workflow("w", {"notify": None})[1].notify is None


def test_the_cheap_check_knows_only_tokens_proven_before_and_never_a_revoked_one(engine: Engine) -> None:
    _, secret = engine.create_token("bot", "viewer")
    assert engine.authenticate(secret, known_only=True) is None  # not proven in this process yet
    assert engine.authenticate(secret) is not None
    assert engine.authenticate(secret, known_only=True) is not None
    assert engine.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B"), known_only=True) is None
    engine.revoke_token("bot")
    assert engine.authenticate(secret, known_only=True) is None


def test_a_token_holds_only_so_many_streams_and_a_stream_ends_when_its_check_says_so() -> None:
    hub = Hub(per_owner=2)
    loop = asyncio.new_event_loop()
    try:
        first, second = hub.connect(loop, None, owner="a"), hub.connect(loop, None, owner="a")
        assert first is not None and second is not None
        assert hub.connect(loop, None, owner="a") is None
        assert hub.connect(loop, None, owner="b") is not None
        hub.disconnect(second)
        assert hub.connect(loop, None, owner="a") is not None
        checks = []

        async def ended() -> str | None:
            checks.append(time.monotonic())
            return "the token was revoked" if len(checks) >= 2 else None

        async def read() -> list[dict[str, str]]:
            return [m async for m in stream(hub, first, ended)]  # no event comes: it ends by the check

        started = time.monotonic()
        messages = loop.run_until_complete(asyncio.wait_for(read(), 10))
        assert [m["event"] for m in messages] == ["hello", "ended"] and "revoked" in messages[1]["data"]
        assert 1.5 < time.monotonic() - started < 4 and first not in hub.clients
    finally:
        loop.close()


def test_plans_kept_for_viewers_are_bounded() -> None:
    from slipway.plan.model import Plan
    from slipway.server.plans import Computed, Plans

    plans = Plans(workflows=3, objects=10)
    for i in range(5):
        plans.put(f"w{i}", Computed(Plan(f"w{i}", None, ""), 0.0, "token:x"))
    assert [w for w in (f"w{i}" for i in range(5)) if plans.get(w)] == ["w2", "w3", "w4"]
    plans.forget("w3")
    assert plans.get("w3") is None


def test_trusted_proxies_are_addresses_or_networks() -> None:
    from slipway.server.app import trusted_proxies

    assert trusted_proxies(("10.0.0.1, 10.1.0.0/16", "::1")) == ["10.0.0.1", "10.1.0.0/16", "::1"]
    assert trusted_proxies(("10.0.0.1", "*")) == ["*"]
    with pytest.raises(ConfigError, match=r"'proxy\.local' is not an IP address or network"):
        trusted_proxies(("proxy.local",))
