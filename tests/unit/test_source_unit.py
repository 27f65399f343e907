"""Pure functions of the source stage: URL redaction, target_path validation, error classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.errors import HostKeyError, SourceAuthError, SourceError, TransientSourceError
from slipway.model import Repository
from slipway.source import GitSource, clean_target_path, redact_url
from slipway.source.auth import Auth
from slipway.source.classify import classify


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:s3cret@git.example/company/k8s.git", "https://git.example/company/k8s.git"),
        ("https://ghp_tokenvalue@github.com/company/k8s", "https://github.com/company/k8s"),
        ("http://u:p%40ss@127.0.0.1:8080/git/x.git", "http://127.0.0.1:8080/git/x.git"),
        ("https://u:p@ss@host/x.git", "https://host/x.git"),  # an unescaped @ in the password
        ("https://git.example/company/k8s.git", "https://git.example/company/k8s.git"),
        ("ssh://git@git.example:2222/company/k8s.git", "ssh://git@git.example:2222/company/k8s.git"),
        ("ssh://git:hunter2@git.example/k8s.git", "ssh://git@git.example/k8s.git"),
        ("git@github.com:company/k8s.git", "git@github.com:company/k8s.git"),
        ("/srv/git/k8s.git", "/srv/git/k8s.git"),
        ("file:///srv/git/k8s.git", "file:///srv/git/k8s.git"),
        ("https://host/path/with@sign", "https://host/path/with@sign"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", ""),
        (".", ""),
        ("k8s/production", "k8s/production"),
        ("k8s/production/", "k8s/production"),
        ("./k8s//production/.", "k8s/production"),
        ("manifests", "manifests"),
        ("a..b/c", "a..b/c"),  # dots inside a name are no escape
        ("...", "..."),
    ],
)
def test_target_path_accepted(path: str, expected: str) -> None:
    assert clean_target_path(path) == expected


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("..", "leaves the repository"),
        ("../x", "leaves the repository"),
        ("k8s/../../etc", "leaves the repository"),
        ("k8s/..", "leaves the repository"),
        ("/etc", "absolute"),
        ("/", "absolute"),
        ("//srv/x", "absolute"),
        ("\\windows\\x", "absolute"),
        ("C:\\x", "absolute"),
        ("k8s\x00x", "control character"),
    ],
)
def test_target_path_refused(path: str, why: str) -> None:
    with pytest.raises(SourceError, match=why) as err:
        clean_target_path(path, "repository r (u): target_path")
    assert str(err.value).startswith("repository r (u): target_path: ")


def _auth(kind: str = "none", tofu: bool = False) -> Auth:
    return Auth(url="u", kind=kind, tofu=tofu, known_hosts_file=Path("/h/known_hosts/r") if tofu else None)


REPO = Repository("production-repo", "https://git.example/company/k8s.git", branch="develop")
NAME = "repository production-repo (https://git.example/company/k8s.git)"


@pytest.mark.parametrize(
    ("stderr", "kind", "error"),
    [
        ("fatal: Authentication failed for 'https://git.example/company/k8s.git/'", "token", SourceAuthError),
        (
            "fatal: could not read Username for 'https://git.example': terminal prompts disabled",
            "none",
            SourceAuthError,
        ),
        ("fatal: unable to access '...': The requested URL returned error: 403", "userpass", SourceAuthError),
        (
            "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            "ssh",
            SourceAuthError,
        ),
        ("Host key verification failed.\nfatal: Could not read from remote repository.", "ssh", HostKeyError),
        ("@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\nHost key verification failed.", "ssh", HostKeyError),
        ("fatal: unable to access '...': Could not resolve host: git.example", "none", TransientSourceError),
        ("ssh: connect to host h port 22: Connection refused", "ssh", TransientSourceError),
        ("fatal: unable to access '...': The requested URL returned error: 503", "token", TransientSourceError),
        ("fatal: couldn't find remote ref refs/heads/develop", "none", SourceError),
        (
            "error: object 36b4cb75d0da: duplicateEntries: contains duplicate file entries\n"
            "fatal: fsck error in packed object\nfatal: index-pack failed",
            "none",
            SourceError,
        ),
        ("error: RPC failed; curl 18\nfatal: early EOF\nfatal: index-pack failed", "token", TransientSourceError),
        ("fatal: '/srv/x' does not appear to be a git repository", "none", SourceError),
        ("fatal: something nobody expected", "none", SourceError),
    ],
)
def test_classify(stderr: str, kind: str, error: type[SourceError]) -> None:
    exc = classify(NAME, REPO, "fetch", stderr, _auth(kind))
    assert type(exc) is error
    assert str(exc).startswith(NAME + ": ")


def test_classify_messages() -> None:
    missing = classify(NAME, REPO, "fetch", "fatal: couldn't find remote ref refs/heads/develop", _auth())
    assert str(missing) == f'{NAME}: branch "develop" does not exist'
    changed = classify(NAME, REPO, "fetch", "REMOTE HOST IDENTIFICATION HAS CHANGED", _auth("ssh", tofu=True))
    assert "CHANGED" in str(changed) and "/h/known_hosts/r" in str(changed)
    assert TransientSourceError("x").retryable and not SourceAuthError("x").retryable
    fsck = "error: object 36b4cb75d0daacaee926: duplicateEntries: contains duplicate file entries\nfatal: fsck error"
    assert str(classify(NAME, REPO, "fetch", fsck, _auth())) == (
        f"{NAME}: the server sent a Git object that fails git's checks, and nothing was fetched "
        "(object 36b4cb75d0da: duplicateEntries: contains duplicate file entries)"
    )


@pytest.mark.parametrize(
    "repo",
    [
        Repository("../escape", "https://h/x.git"),
        Repository("ok", "--upload-pack=touch /tmp/pwned"),
        Repository("ok", "https://h/x.git", branch="-x"),
        Repository("ok", "https://h/x.git", branch="a..b"),
        Repository("ok", "https://h/x.git", branch="a b"),
    ],
)
def test_bad_repositories_refused_before_running_git(repo: Repository, tmp_path: Path) -> None:
    source = GitSource(cache_dir=tmp_path / "cache", home=tmp_path / "home")
    with pytest.raises(SourceError):
        source.remote_head(repo)
    with pytest.raises(SourceError):
        source.fetch(repo)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.git"))
