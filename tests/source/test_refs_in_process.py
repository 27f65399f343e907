"""Where a branch points, asked without starting git: smart HTTP, local paths, a kept SSH connection.

git is put on PATH behind a small script that notes each call and runs the real git, so a test can
tell whether a check started it. Answers are compared with ``git ls-remote`` on the same servers.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from pathlib import Path

import pytest

from slipway.errors import SourceAuthError, SourceError
from slipway.model import Credentials, Repository
from slipway.source import GitSource
from tests.gitservers import GitConfig, HttpGitServer, SshGitServer, commit, git, make_repo, push

FILES = {"k8s/a.yaml": "kind: ConfigMap\n"}


@pytest.fixture
def git_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A log of every git command slipway starts (one line each: its arguments)."""
    real = shutil.which("git")
    assert real is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "git-calls.log"
    log.touch()
    wrapper = bindir / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{Path(real).parent}:/usr/bin:/bin")
    return log


def calls(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    log.write_text("")
    return lines


def ls_remote(url: str, branch: str = "main") -> str:
    return git("ls-remote", url, f"refs/heads/{branch}").split()[0]


def test_http_with_a_token_starts_no_git_and_never_shows_the_token(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str, git_calls: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="slipway")
    work = git_http_server.create_repo(repo_name, FILES)
    creds = Credentials.from_config({"type": "token", "token": git_http_server.token})
    repo = Repository("http-refs", git_http_server.url(repo_name), credentials=creds)
    head = ls_remote(git_http_server.public_url(repo_name))
    assert source.remote_head(repo) == head
    assert calls(git_calls)[-1] == "config --list -z --includes"  # git's settings, read once
    for _ in range(5):
        assert source.remote_head(repo) == head
    assert calls(git_calls) == []
    moved = commit(work, {"k8s/a.yaml": "kind: ConfigMap\nmetadata: {}\n"})
    push(work)
    calls(git_calls)
    assert source.remote_head(repo) == moved and calls(git_calls) == []

    # The mirror at the head: a fetch needs no git either; one behind it fetches with git.
    assert source.fetch(repo) == moved and any(" fetch " in f" {c} " for c in calls(git_calls))
    assert source.fetch(repo) == moved and calls(git_calls) == []

    wrong = Repository(
        "http-refs", repo.url, credentials=Credentials.from_config({"type": "token", "token": "tok-wrong-0123456789"})
    )
    with pytest.raises(SourceAuthError) as err:
        source.remote_head(wrong)  # refused: git is asked, for the error users know
    assert any("ls-remote" in c for c in calls(git_calls))
    shown = "".join(traceback.format_exception(err.value)) + "\n".join(r.getMessage() for r in caplog.records)
    for secret in (git_http_server.token, "tok-wrong-0123456789"):
        assert secret not in shown


def test_url_rewrites_apply_and_a_proxy_leaves_the_check_to_git(
    git_http_server: HttpGitServer, git_config: GitConfig, source: GitSource, repo_name: str, git_calls: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    git_http_server.create_repo(repo_name, FILES)
    git_config.insteadof(git_http_server.public_base_url, "https://git.example.invalid/team/")
    repo = Repository("rewritten", f"https://git.example.invalid/team/{repo_name}.git")
    head = ls_remote(git_http_server.public_url(repo_name))
    calls(git_calls)
    assert source.remote_head(repo) == head and calls(git_calls) == ["config --list -z --includes"]

    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # git honours it; slipway leaves proxies to git altogether
    assert source.remote_head(repo) == head
    assert any("ls-remote" in c for c in calls(git_calls))


def test_local_paths_loose_and_packed_refs(tmp_path: Path, source: GitSource, git_calls: Path) -> None:
    work = make_repo(tmp_path / "work", FILES)
    origin = tmp_path / "work.git"
    head = git("rev-parse", "HEAD", cwd=work)
    git("--git-dir", str(origin), "pack-refs", "--all")
    assert not (origin / "refs" / "heads" / "main").exists()
    calls(git_calls)
    for url in (str(origin), f"file://{origin}"):
        assert source.remote_head(Repository("local", url)) == head
    moved = commit(work, {"b.txt": "b"})
    push(work)  # a loose ref again, over the packed one
    assert source.remote_head(Repository("local", str(origin))) == moved
    assert [c for c in calls(git_calls) if "ls-remote" in c] == []
    with pytest.raises(SourceError, match='branch "nope" does not exist'):
        source.remote_head(Repository("local", str(origin), branch="nope"))  # git says so


def test_ssh_checks_share_one_connection_and_start_no_git(
    git_ssh_server: SshGitServer, source: GitSource, repo_name: str, git_calls: Path
) -> None:
    work = git_ssh_server.create_repo(repo_name, FILES)
    creds = Credentials.from_config(
        {"type": "ssh", "ssh_key": git_ssh_server.client_key, "known_hosts": git_ssh_server.known_hosts}
    )
    repo = Repository("ssh-refs", git_ssh_server.url(repo_name), credentials=creds)
    head = git("rev-parse", "HEAD", cwd=work)
    calls(git_calls)
    assert source.remote_head(repo) == head
    sockets = list(Path(source._mirrors.refs.ssh._dir or "/nonexistent").iterdir())
    assert len(sockets) == 1  # the kept connection
    moved = commit(work, {"k8s/a.yaml": "kind: Secret\n"})
    push(work)
    calls(git_calls)
    for _ in range(3):
        assert source.remote_head(repo) == moved
    assert calls(git_calls) == []
    source.close()
    assert source._mirrors.refs.ssh._dir is None
