"""GitSource over smart HTTP with Basic auth (lighttpd + git http-backend)."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from slipway.errors import SourceAuthError, SourceError, TransientSourceError
from slipway.model import Credentials, Repository
from slipway.source import GitSource
from tests.gitservers import HttpGitServer, commit, free_port, git, push

FILES = {
    "k8s/prod/app.yaml": "kind: ConfigMap\nmetadata: {name: prod}\n",
    "k8s/staging/app.yaml": "kind: ConfigMap\nmetadata: {name: staging}\n",
    "README.md": "# manifests\n",
}


def token(value: str) -> Credentials:
    return Credentials.from_config({"type": "token", "token": value})


def userpass(username: str, password: str) -> Credentials:
    return Credentials.from_config({"type": "userpass", "username": username, "password": password})


def files_under(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def mirror_head(source: GitSource, repo: Repository) -> str:
    return git("--git-dir", source.mirror_path(repo), "rev-parse", f"refs/heads/{repo.branch}")


def test_token_right(git_http_server: HttpGitServer, source: GitSource, repo_name: str, tmp_path: Path) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    head = git("rev-parse", "HEAD", cwd=work)
    repo = Repository("production-repo", git_http_server.url(repo_name), credentials=token(git_http_server.token))

    assert source.remote_head(repo) == head
    assert source.fetch(repo) == head
    dest = tmp_path / "out"
    dest.mkdir()
    out = source.materialize(repo, head, "k8s/prod", dest)
    assert out == dest / "k8s" / "prod"
    assert files_under(out) == {"app.yaml": FILES["k8s/prod/app.yaml"]}


def test_token_wrong(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    git_http_server.create_repo(repo_name, FILES)
    url = git_http_server.url(repo_name)
    repo = Repository("production-repo", url, credentials=token("not-the-token-3f9a"))

    for call in (source.remote_head, source.fetch):
        with pytest.raises(SourceAuthError) as err:
            call(repo)
        message = str(err.value)
        assert "production-repo" in message and url in message
        assert "not-the-token-3f9a" not in message
        assert "token" in message
    assert not source.mirror_path(repo).exists()


def test_userpass_right_and_wrong(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    head = git("rev-parse", "HEAD", cwd=work)
    url = git_http_server.url(repo_name)
    good = Repository("up-repo", url, credentials=userpass(git_http_server.username, git_http_server.password))
    assert source.remote_head(good) == head
    assert source.fetch(good) == head

    bad = Repository("up-repo", url, credentials=userpass(git_http_server.username, "wrong-password-77"))
    with pytest.raises(SourceAuthError, match=r"repository up-repo \(http://127\.0\.0\.1:\d+/git/.*\.git\)"):
        source.fetch(bad)
    unknown = Repository("up-repo", url, credentials=userpass("nobody", git_http_server.password))
    with pytest.raises(SourceAuthError):
        source.remote_head(unknown)


def test_no_credentials_against_auth_fails_fast(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str
) -> None:
    git_http_server.create_repo(repo_name, FILES)
    repo = Repository("anon-repo", git_http_server.url(repo_name))
    started = time.monotonic()
    with pytest.raises(SourceAuthError, match="requires credentials and none are registered"):
        source.fetch(repo)
    with pytest.raises(SourceAuthError):
        source.remote_head(repo)
    assert time.monotonic() - started < 10


def test_public_repository_without_credentials(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str
) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    repo = Repository("public-repo", git_http_server.public_url(repo_name))
    assert source.fetch(repo) == git("rev-parse", "HEAD", cwd=work)


def test_credentials_in_url_are_used_and_redacted(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str
) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    base = git_http_server.url(repo_name).removeprefix("http://")
    repo = Repository("url-creds", f"http://{git_http_server.username}:{git_http_server.password}@{base}")
    assert source.fetch(repo) == git("rev-parse", "HEAD", cwd=work)
    wrong = Repository("url-creds", f"http://{git_http_server.username}:wrong-pw-in-url@{base}")
    with pytest.raises(SourceAuthError) as err:
        source.fetch(wrong)
    assert "wrong-pw-in-url" not in str(err.value)
    assert f"(http://{base})" in str(err.value)


def test_a_token_written_as_the_user_name_of_the_url(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str
) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    secret = "urltok-" + secrets.token_hex(12)
    git_http_server.add_user(secret, "")  # the token as the user name, without a password
    clean = git_http_server.url(repo_name)
    in_url = clean.replace("http://", f"http://{secret}@")
    repo = Repository.from_config({"id": "url-token", "url": in_url})
    assert repo.url == clean and repo.credentials is not None and repo.credentials.token == secret
    head = git("rev-parse", "HEAD", cwd=work)
    assert source.remote_head(repo) == head and source.fetch(repo) == head
    # A repository stored with the token still in its URL authenticates the same way.
    assert source.remote_head(Repository("url-token", in_url)) == head
    wrong = Repository.from_config({"id": "url-token", "url": clean.replace("http://", "http://not-it-77@")})
    with pytest.raises(SourceAuthError, match="refused the token") as err:
        source.fetch(wrong)
    assert "not-it-77" not in str(err.value) and f"({clean})" in str(err.value)


def test_remote_head_sees_a_push_without_fetching(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str
) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    repo = Repository("poll-repo", git_http_server.url(repo_name), credentials=token(git_http_server.token))
    first = source.fetch(repo)

    second = commit(work, {"k8s/prod/app.yaml": "kind: ConfigMap\nmetadata: {name: prod-v2}\n"}, "v2")
    push(work)
    assert second != first
    assert source.remote_head(repo) == second
    assert mirror_head(source, repo) == first  # ls-remote downloaded nothing
    assert source.fetch(repo) == second
    assert mirror_head(source, repo) == second
    assert source.remote_head(repo) == second


def test_unreachable_host_is_transient(source: GitSource) -> None:
    port = free_port()  # nothing listens there
    repo = Repository("gone-repo", f"http://127.0.0.1:{port}/git/x.git", credentials=token("t0ken-abc"))
    for call in (source.remote_head, source.fetch):
        with pytest.raises(TransientSourceError) as err:
            call(repo)
        assert err.value.retryable
        assert f"repository gone-repo (http://127.0.0.1:{port}/git/x.git)" in str(err.value)


def test_missing_branch(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    git_http_server.create_repo(repo_name, FILES)
    url = git_http_server.url(repo_name)
    repo = Repository("production-repo", url, branch="develop", credentials=token(git_http_server.token))
    for call in (source.remote_head, source.fetch):
        with pytest.raises(SourceError) as err:
            call(repo)
        assert type(err.value) is SourceError
        assert str(err.value) == f'repository production-repo ({url}): branch "develop" does not exist'


def test_other_branch(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    git("checkout", "--quiet", "-b", "release/1.x", cwd=work)
    sha = commit(work, {"k8s/prod/app.yaml": "release\n"}, "release")
    push(work)
    repo = Repository(
        "rel", git_http_server.url(repo_name), branch="release/1.x", credentials=token(git_http_server.token)
    )
    assert source.remote_head(repo) == sha
    assert source.fetch(repo) == sha
    with source.checkout(repo, sha, "k8s/prod") as out:
        assert (out / "app.yaml").read_text() == "release\n"


def test_failed_fetch_keeps_the_previous_mirror(
    git_http_server: HttpGitServer, source: GitSource, repo_name: str, tmp_path: Path
) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    url = git_http_server.url(repo_name)
    repo = Repository("keep-repo", url, credentials=token(git_http_server.token))
    old = source.fetch(repo)
    commit(work, {"k8s/prod/app.yaml": "changed\n"}, "v2")
    push(work)

    # credentials that stopped working
    with pytest.raises(SourceAuthError):
        source.fetch(Repository("keep-repo", url, credentials=token("revoked-token")))
    assert mirror_head(source, repo) == old

    # the server is down
    with git_http_server.stopped(), pytest.raises(TransientSourceError):
        source.fetch(repo)
    assert mirror_head(source, repo) == old
    dest = tmp_path / "old"
    dest.mkdir()
    out = source.materialize(repo, old, "k8s/prod", dest)
    assert (out / "app.yaml").read_text() == FILES["k8s/prod/app.yaml"]
    leftovers = [p.name for p in source.mirror_path(repo).parent.iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


def test_failed_first_fetch_leaves_nothing(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    git_http_server.create_repo(repo_name, FILES)
    repo = Repository("first-repo", git_http_server.url(repo_name), credentials=token("bad-token"))
    with pytest.raises(SourceAuthError):
        source.fetch(repo)
    mirror = source.mirror_path(repo)
    assert not mirror.exists()
    assert [p.name for p in mirror.parent.iterdir() if not p.name.endswith(".lock")] == []


def test_insteadof_from_global_git_config(
    git_http_server: HttpGitServer, git_config, source: GitSource, repo_name: str, tmp_path: Path
) -> None:
    work = git_http_server.create_repo(f"{repo_name}/k8s-manifests", FILES)
    git_config.insteadof(f"{git_http_server.base_url}{repo_name}/", "https://github.com/company/")
    repo = Repository.from_config(
        {
            "id": "production-repo",
            "url": "https://github.com/company/k8s-manifests",
            "credentials": {"type": "token", "token": git_http_server.token},
        }
    )
    head = git("rev-parse", "HEAD", cwd=work)
    assert source.remote_head(repo) == head
    assert source.fetch(repo) == head
    with source.checkout(repo, head, "k8s/staging") as out:
        assert files_under(out) == {"app.yaml": FILES["k8s/staging/app.yaml"]}


def test_not_a_repository(git_http_server: HttpGitServer, source: GitSource) -> None:
    repo = Repository("nothing", git_http_server.public_url("does-not-exist"))
    with pytest.raises(SourceError, match="no Git repository at this URL"):
        source.fetch(repo)


def test_fetch_takes_only_the_tracked_branch(git_http_server: HttpGitServer, source: GitSource, repo_name: str) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    git("tag", "v1", cwd=work)
    git("push", "--quiet", "origin", "v1", cwd=work)
    git("checkout", "--quiet", "-b", "feature", cwd=work)
    commit(work, {"big.bin": "x" * 1000}, "feature work")
    push(work)
    repo = Repository("one-branch", git_http_server.url(repo_name), credentials=token(git_http_server.token))
    source.fetch(repo)
    refs = git("--git-dir", source.mirror_path(repo), "for-each-ref", "--format=%(refname)").splitlines()
    assert refs == ["refs/heads/main"]


def test_cache_path_with_spaces_and_quotes(git_http_server: HttpGitServer, repo_name: str, tmp_path: Path) -> None:
    work = git_http_server.create_repo(repo_name, FILES)
    base = tmp_path / "a dir %d $HOME 'q'"
    source = GitSource(cache_dir=base / "cache", home=base / "home")
    repo = Repository("spaced", git_http_server.url(repo_name), credentials=token(git_http_server.token))
    assert source.fetch(repo) == git("rev-parse", "HEAD", cwd=work)


def test_a_server_that_stops_answering_ends_the_fetch_not_a_slow_one(
    source: GitSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch is bounded by progress, not by its length: a server that accepts and never sends ends
    it after the stall time as unreachable (a huge repository through a slow link is fetched)."""
    import socket
    import threading

    from slipway.source import process

    monkeypatch.setattr(process, "STALL_SECONDS", 2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # never answered

    threading.Thread(target=accept, daemon=True).start()
    try:
        repo = Repository("silent", f"http://127.0.0.1:{listener.getsockname()[1]}/silent.git")
        started = time.monotonic()
        with pytest.raises(TransientSourceError, match="cannot reach the Git server"):
            source.fetch(repo)
        assert time.monotonic() - started < 30
    finally:
        listener.close()
        for conn in held:
            conn.close()
