"""Credentials reach git and nothing else: not argv, not logs, not errors, not files, not the state store."""

from __future__ import annotations

import base64
import logging
import secrets
import subprocess
import threading
import traceback
from pathlib import Path

import pytest

from slipway.errors import HostKeyError, SourceAuthError, SourceError
from slipway.model import Credentials, Repository
from slipway.source import GitSource
from slipway.store import Store
from tests.gitservers import GitConfig, HttpGitServer, SshGitServer

FILES = {"k8s/app.yaml": "kind: ConfigMap\n"}


class ProcessWatcher:
    """Captures ``ps -ww -eo args`` (every process's whole argv, -ww: not cut at 80 columns) over and over."""

    def __init__(self) -> None:
        self.snapshots: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False).stdout
            self.snapshots.append(out)

    def __enter__(self) -> ProcessWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def saw(self, *needles: str) -> bool:
        return any(all(n in line for n in needles) for snap in list(self.snapshots) for line in snap.splitlines())


def test_secrets_stay_secret(
    git_http_server: HttpGitServer,
    git_ssh_server: SshGitServer,
    source: GitSource,
    repo_name: str,
    slipway_env: dict[str, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="slipway")
    token = "tok-" + secrets.token_hex(16)
    bot = "bot-" + secrets.token_hex(4)
    password = "pw-" + secrets.token_hex(16)
    user = "user-" + secrets.token_hex(4)
    url_password = "urlpw-" + secrets.token_hex(16)
    url_user = "urluser-" + secrets.token_hex(4)
    wrong_token = "wrongtok-" + secrets.token_hex(16)
    wrong_password = "wrongpw-" + secrets.token_hex(16)
    git_http_server.add_user(bot, token)
    git_http_server.add_user(user, password)
    git_http_server.add_user(url_user, url_password)
    key = git_ssh_server.client_key
    key_lines = [ln for ln in key.splitlines() if len(ln) >= 40 and "PRIVATE KEY" not in ln]
    assert key_lines, "the generated key has a base64 body to look for"
    secret_values = [token, password, url_password, wrong_token, wrong_password, *key_lines]

    names = {kind: f"{repo_name}-{kind}" for kind in ("token", "userpass", "url", "ssh")}
    for kind in ("token", "userpass", "url"):
        git_http_server.create_repo(names[kind], FILES)
    git_ssh_server.create_repo(names["ssh"], FILES)
    http_url = git_http_server.url(names["url"]).removeprefix("http://")
    repos = {
        "token": Repository(
            "secret-token",
            git_http_server.url(names["token"]),
            credentials=Credentials.from_config({"type": "token", "username": bot, "token": token}),
        ),
        "userpass": Repository(
            "secret-userpass",
            git_http_server.url(names["userpass"]),
            credentials=Credentials.from_config({"type": "userpass", "username": user, "password": password}),
        ),
        "url": Repository("secret-url", f"http://{url_user}:{url_password}@{http_url}"),
        "ssh": Repository(
            "secret-ssh",
            git_ssh_server.url(names["ssh"]),
            credentials=Credentials.from_config(
                {"type": "ssh", "ssh_key": key, "known_hosts": git_ssh_server.known_hosts}
            ),
        ),
    }

    # (a), (b): fetch with every kind of credentials while watching every process's argv
    with ProcessWatcher() as ps:
        for kind, repo in repos.items():
            for _ in range(100):
                source.forget(repo.id)
                assert len(source.fetch(repo)) == 40
                assert len(source.remote_head(repo)) == 40
                if ps.saw("git", names[kind]):
                    break
            assert ps.saw("git", names[kind]), f"ps never caught the git process of the {kind} fetch"
    assert ps.saw("ssh", "IdentityFile=", "IdentitiesOnly=yes"), "ps never caught the ssh process"
    argv_text = "\n".join(ps.snapshots)

    # (d): errors of failing fetches, whole tracebacks included
    failures = [
        Repository(
            "secret-token",
            repos["token"].url,
            credentials=Credentials.from_config({"type": "token", "username": bot, "token": wrong_token}),
        ),
        Repository(
            "secret-userpass",
            repos["userpass"].url,
            credentials=Credentials.from_config({"type": "userpass", "username": user, "password": wrong_password}),
        ),
        Repository("secret-url", f"http://{url_user}:{wrong_password}@{http_url}"),
        Repository(
            "secret-ssh",
            repos["ssh"].url,
            credentials=Credentials.from_config(
                {"type": "ssh", "ssh_key": key, "known_hosts": git_ssh_server.wrong_known_hosts()}
            ),
        ),
    ]
    error_texts = []
    for repo in failures:
        with pytest.raises(SourceError) as err:
            source.fetch(repo)
        assert isinstance(err.value, SourceAuthError | HostKeyError)
        assert repo.id in str(err.value)
        error_texts.append("".join(traceback.format_exception(err.value)) + repr(err.value))
    errors_text = "\n".join(error_texts)

    # (c): every log record of the slipway loggers
    records = [r for r in caplog.records if r.name.startswith("slipway")]
    assert any(r.name == "slipway.source" and "git fetch" in r.getMessage() for r in records)
    logs_text = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records)

    # (e): the state store holds the credentials encrypted
    store = Store(home=slipway_env["home"])
    for repo in (repos["token"], repos["userpass"], repos["ssh"]):
        store.put_repository(repo)
        assert store.get_repository(repo.id).credentials == repo.credentials
    db = store.path
    raw = b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    assert b"secret-userpass" in raw  # we are reading the bytes the store wrote
    store.close()

    # and no file slipway left in its cache or home (askpass helper, mirrors, pins, keys) holds a secret
    left_behind = b"".join(p.read_bytes() for d in slipway_env.values() for p in d.rglob("*") if p.is_file())
    assert not list((source.cache_dir / "tmp").iterdir())

    for value in secret_values:
        assert value not in argv_text, "a secret showed in a process's argv"
        assert value not in logs_text, "a secret showed in a log record"
        assert value not in errors_text, "a secret showed in an error"
        assert value.encode() not in raw, "a secret sits in plain text in the state store"
        assert value.encode() not in left_behind, "a secret sits in a file slipway left behind"


def test_credential_helpers_are_neither_asked_nor_fed(
    git_http_server: HttpGitServer, git_config: GitConfig, source: GitSource, repo_name: str, tmp_path: Path
) -> None:
    """The user's helpers may hold other credentials for the host; slipway uses its own and stores none."""
    git_http_server.create_repo(repo_name, FILES)
    store_file = tmp_path / "git-credentials"
    store_file.write_text(f"http://{git_http_server.username}:not-the-password@127.0.0.1%3a{git_http_server.port}\n")
    before = store_file.read_text()
    git_config.set("credential.helper", f"store --file={store_file}")
    repo = Repository(
        "helper-repo",
        git_http_server.url(repo_name),
        credentials=Credentials.from_config({"type": "token", "token": git_http_server.token}),
    )
    assert len(source.fetch(repo)) == 40
    assert store_file.read_text() == before


def test_git_tracing_cannot_leak_into_logs(
    git_http_server: HttpGitServer,
    source: GitSource,
    repo_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="slipway")
    for var in ("GIT_TRACE", "GIT_TRACE_CURL", "GIT_CURL_VERBOSE", "GIT_TRACE_PACKET"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("GIT_TRACE_REDACT", "0")
    git_http_server.create_repo(repo_name, FILES)
    wrong = "wrong-" + secrets.token_hex(12)
    repo = Repository(
        "trace-repo",
        git_http_server.url(repo_name),
        credentials=Credentials.from_config({"type": "userpass", "username": "tracer", "password": wrong}),
    )
    with pytest.raises(SourceAuthError) as err:
        source.fetch(repo)
    basic = base64.b64encode(f"tracer:{wrong}".encode()).decode()
    text = "\n".join(r.getMessage() for r in caplog.records) + str(err.value)
    assert "git fetch for repository trace-repo" in text
    assert wrong not in text and basic not in text
