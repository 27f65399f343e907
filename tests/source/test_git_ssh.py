"""GitSource over SSH against a real sshd: keys, known_hosts, trust on first use."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from slipway.errors import HostKeyError, SourceAuthError, TransientSourceError
from slipway.model import Credentials, Repository
from slipway.source import GitSource
from tests.gitservers import SshGitServer, free_port, git

FILES = {"k8s/prod/app.yaml": "kind: ConfigMap\n", "k8s/prod/sub/extra.yaml": "kind: Secret\n", "other.txt": "x\n"}


def ssh_creds(key: str, known_hosts: str | None = None) -> Credentials:
    config = {"type": "ssh", "ssh_key": key}
    if known_hosts is not None:
        config["known_hosts"] = known_hosts
    return Credentials.from_config(config)


def no_temp_files(source: GitSource) -> bool:
    tmp = source.cache_dir / "tmp"
    return not tmp.exists() or not any(tmp.iterdir())


def test_right_known_hosts(git_ssh_server: SshGitServer, source: GitSource, repo_name: str, tmp_path: Path) -> None:
    work = git_ssh_server.create_repo(repo_name, FILES)
    head = git("rev-parse", "HEAD", cwd=work)
    creds = ssh_creds(git_ssh_server.client_key, git_ssh_server.known_hosts)
    repo = Repository("ssh-repo", git_ssh_server.url(repo_name), credentials=creds)

    assert source.remote_head(repo) == head
    assert source.fetch(repo) == head
    dest = tmp_path / "out"
    dest.mkdir()
    out = source.materialize(repo, head, "k8s/prod", dest)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "k8s/prod/app.yaml",
        "k8s/prod/sub/extra.yaml",
    ]
    assert (out / "sub" / "extra.yaml").read_text() == "kind: Secret\n"
    assert no_temp_files(source)  # the key file lived only while git ran
    assert not (source.home / "known_hosts" / "ssh-repo").exists()  # no TOFU when known_hosts is given


def test_key_and_known_hosts_as_files(
    git_ssh_server: SshGitServer, source: GitSource, repo_name: str, tmp_path: Path
) -> None:
    work = git_ssh_server.create_repo(repo_name, FILES)
    known = tmp_path / "known_hosts"
    known.write_text(git_ssh_server.known_hosts + "\n")
    key = tmp_path / "id_ed25519"
    key.write_text(git_ssh_server.client_key)
    key.chmod(0o600)
    repo = Repository("ssh-files", git_ssh_server.url(repo_name), credentials=ssh_creds(str(key), str(known)))
    assert source.fetch(repo) == git("rev-parse", "HEAD", cwd=work)


def test_wrong_known_hosts(git_ssh_server: SshGitServer, source: GitSource, repo_name: str) -> None:
    git_ssh_server.create_repo(repo_name, FILES)
    url = git_ssh_server.url(repo_name)
    repo = Repository(
        "ssh-repo", url, credentials=ssh_creds(git_ssh_server.client_key, git_ssh_server.wrong_known_hosts())
    )
    for call in (source.remote_head, source.fetch):
        with pytest.raises(HostKeyError) as err:
            call(repo)
        assert "repository ssh-repo" in str(err.value) and url in str(err.value)
        assert "CHANGED" in str(err.value)
    assert not source.mirror_path(repo).exists()


def test_known_hosts_for_another_host(git_ssh_server: SshGitServer, source: GitSource, repo_name: str) -> None:
    git_ssh_server.create_repo(repo_name, FILES)
    other = git_ssh_server.known_hosts.replace(f"[127.0.0.1]:{git_ssh_server.port}", "git.example.com")
    repo = Repository(
        "ssh-repo", git_ssh_server.url(repo_name), credentials=ssh_creds(git_ssh_server.client_key, other)
    )
    with pytest.raises(HostKeyError, match="unknown"):
        source.fetch(repo)


def test_trust_on_first_use_then_changed_key(git_ssh_server: SshGitServer, source: GitSource, repo_name: str) -> None:
    work = git_ssh_server.create_repo(repo_name, FILES)
    head = git("rev-parse", "HEAD", cwd=work)
    repo = Repository("tofu-repo", git_ssh_server.url(repo_name), credentials=ssh_creds(git_ssh_server.client_key))
    pinned = source.home / "known_hosts" / "tofu-repo"
    assert not pinned.exists()

    assert source.fetch(repo) == head  # first contact records the key
    assert pinned.is_file()
    recorded = pinned.read_text()
    assert git_ssh_server.known_hosts.split()[-1] in recorded
    assert source.fetch(repo) == head  # and it is trusted from then on
    assert source.remote_head(repo) == head

    with git_ssh_server.changed_host_key():
        # The connection kept open for ref checks was made with the trusted key, and the mirror is
        # at the head: nothing new is connected to, nothing to refuse. Every new connection is checked.
        assert source.remote_head(repo) == head
        source.close()
        for call in (source.remote_head, source.fetch):
            with pytest.raises(HostKeyError) as err:
                call(repo)
            assert "CHANGED" in str(err.value) and "tofu-repo" in str(err.value)
            assert str(pinned) in str(err.value)  # the hint says which file to remove
    assert pinned.read_text() == recorded  # a changed key is never recorded over the trusted one
    assert source.fetch(repo) == head

    # A repository of its own id trusts on its own: pins are per repository.
    with git_ssh_server.changed_host_key():
        other = Repository("tofu-other", repo.url, credentials=repo.credentials)
        assert source.fetch(other) == head
        source.forget_host_keys("tofu-repo")
        assert source.fetch(repo) == head  # trusted anew after the pin was dropped


def test_wrong_client_key(git_ssh_server: SshGitServer, source: GitSource, repo_name: str, tmp_path: Path) -> None:
    git_ssh_server.create_repo(repo_name, FILES)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    repo = Repository(
        "ssh-repo",
        git_ssh_server.url(repo_name),
        credentials=ssh_creds(stranger.read_text(), git_ssh_server.known_hosts),
    )
    with pytest.raises(SourceAuthError, match="refused the SSH key"):
        source.fetch(repo)
    assert no_temp_files(source)


def test_not_a_key(git_ssh_server: SshGitServer, source: GitSource, repo_name: str) -> None:
    git_ssh_server.create_repo(repo_name, FILES)
    bogus = "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n"
    repo = Repository(
        "ssh-repo", git_ssh_server.url(repo_name), credentials=ssh_creds(bogus, git_ssh_server.known_hosts)
    )
    with pytest.raises(SourceAuthError, match="cannot load the private key"):
        source.fetch(repo)


def test_ssh_unreachable_is_transient(git_ssh_server: SshGitServer, source: GitSource) -> None:
    port = free_port()
    repo = Repository(
        "gone-ssh", f"ssh://git@127.0.0.1:{port}/srv/x.git", credentials=ssh_creds(git_ssh_server.client_key)
    )
    with pytest.raises(TransientSourceError, match=rf"repository gone-ssh \(ssh://git@127.0.0.1:{port}/srv/x.git\)"):
        source.fetch(repo)


def test_cache_and_home_with_spaces_and_percent(git_ssh_server: SshGitServer, repo_name: str, tmp_path: Path) -> None:
    """ssh splits option values at spaces and expands %-tokens; slipway's own paths must survive both."""
    work = git_ssh_server.create_repo(repo_name, FILES)
    base = tmp_path / "my dir %d"
    source = GitSource(cache_dir=base / "cache", home=base / "home")
    for known_hosts in (git_ssh_server.known_hosts, None):
        creds = ssh_creds(git_ssh_server.client_key, known_hosts)
        repo = Repository("spaced", git_ssh_server.url(repo_name), credentials=creds)
        assert source.fetch(repo) == git("rev-parse", "HEAD", cwd=work)
    assert (base / "home" / "known_hosts" / "spaced").is_file()
