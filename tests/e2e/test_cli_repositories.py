"""`slipway repo` as a user runs it against real Git servers: secrets in URLs, the check at `repo add`,
one home's mirrors apart from another's, and text printed as it is."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.engine import Engine
from slipway.errors import TransientSourceError
from slipway.source import GitSource
from slipway.store import Store
from tests.gitservers import GitConfig, HttpGitServer, free_port, make_repo, origin_of

from .conftest import Cli


def cm(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


@pytest.fixture
def plain_cli(slipway_home: Path, tmp_path: Path, git_config: GitConfig) -> Cli:
    """The command without a cluster: for what `repo` does alone."""
    env = {**os.environ, "SLIPWAY_HOME": str(slipway_home), "SLIPWAY_GIT_CACHE": str(tmp_path / "git-cache")}
    env.pop("KUBECONFIG", None)
    return Cli(env, slipway_home, tmp_path)


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.cluster
def test_a_token_in_a_url_is_a_secret_everywhere(cli: Cli, git_http_server: HttpGitServer, namespace: str) -> None:
    name = f"url-token-{secrets.token_hex(4)}"
    git_http_server.create_repo(name, {"k8s/cm.yaml": yaml.safe_dump(cm("from-url-token", namespace, a="1"))})
    token = "tok" + secrets.token_hex(16)
    git_http_server.add_user(token, "")  # the server takes the token as a user name without a password
    clean = git_http_server.url(name)
    url = clean.replace("http://", f"http://{token}@")
    runs: list[subprocess.CompletedProcess[str]] = []

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        r = cli(*args)
        runs.append(r)
        assert r.returncode == code, (args, r.stdout, r.stderr)
        return r

    for prefix in ((), ("-o", "json"), ("--debug",)):
        run(*prefix, "repo", "add", url, "--id", "tokrepo")
        run(*prefix, "repo", "list")
        run(*prefix, "repo", "show", "tokrepo")
    (listed,) = json.loads(run("-o", "json", "repo", "list").stdout)
    assert listed["url"] == clean
    assert listed["credentials"] == {"type": "token", "token_as_username": True}
    assert clean in run("repo", "show", "tokrepo").stdout

    # The fetch authenticates with the token (the server refuses anyone else), end to end.
    run("workflow", "create", "--id", "tok-wf", "--repository", "tokrepo", "--path", "k8s", "--namespace", namespace)
    for prefix in ((), ("-o", "json"), ("--debug",)):
        diff = run(*prefix, "diff", "tok-wf", code=1)
    assert "Creating ConfigMap/from-url-token" in diff.stdout
    assert "DEBUG repository tokrepo" in diff.stderr  # the --debug log is there (an up-to-date mirror: no fetch)
    run("--debug", "sync", "tok-wf", "--yes")
    run("--debug", "diff", "tok-wf", code=0)

    printed = "\n".join(r.stdout + r.stderr for r in runs)
    assert token not in printed
    # state.db, and its -wal and -shm while they exist (the last connection to close folds them in)
    store_files = list(cli.home.glob("state.db*"))
    assert "state.db" in {p.name for p in store_files}
    assert b"tokrepo" in b"".join(p.read_bytes() for p in store_files)  # these are the store's bytes
    for p in store_files:
        assert token.encode() not in p.read_bytes(), p.name
    left = [p for d in (cli.home, Path(cli.env["SLIPWAY_GIT_CACHE"])) for p in d.rglob("*") if p.is_file()]
    assert not [p for p in left if token.encode() in p.read_bytes()]


def test_repo_add_of_a_missing_branch_is_an_error_at_once(plain_cli: Cli, git_http_server: HttpGitServer) -> None:
    repo_name = f"branch-check-{secrets.token_hex(4)}"
    git_http_server.create_repo(repo_name, {"k8s/a.yaml": "a: 1\n"})
    url = git_http_server.public_url(repo_name)
    line = one_line(plain_cli("repo", "add", url, "--id", "br-repo", "--branch", "nope"))
    assert line == f'error: repository br-repo ({url}): branch "nope" does not exist'
    assert json.loads(plain_cli("-o", "json", "repo", "list").stdout) == []
    assert plain_cli("repo", "add", url, "--id", "br-repo").returncode == 0
    one_line(plain_cli("repo", "add", url, "--id", "br-repo", "--branch", "nope"))
    assert json.loads(plain_cli("-o", "json", "repo", "show", "br-repo").stdout)["branch"] == "main"


def test_repo_add_of_an_unreachable_server_needs_no_check(plain_cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}/git/offline.git"  # nothing listens there
    line = one_line(plain_cli("repo", "add", url, "--id", "offline"))
    assert "repository offline" in line and "cannot reach the Git server" in line and "--no-check" in line
    assert json.loads(plain_cli("-o", "json", "repo", "list").stdout) == []
    r = plain_cli("repo", "add", url, "--id", "offline", "--no-check")
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in json.loads(plain_cli("-o", "json", "repo", "list").stdout)] == ["offline"]


def test_the_python_api_registers_offline(slipway_home: Path, tmp_path: Path) -> None:
    """Scripts register repositories before any server is up; only the CLI (or check=True) asks."""
    engine = Engine(Store(home=slipway_home), GitSource(cache_dir=tmp_path / "git", home=slipway_home))
    url = f"http://127.0.0.1:{free_port()}/git/later.git"
    engine.register_repository({"id": "later", "url": url})
    with pytest.raises(TransientSourceError, match="repository checked"):
        engine.register_repository({"id": "checked", "url": url}, check=True)
    assert [r.id for r in engine.repositories()] == ["later"]


def test_errors_and_urls_print_literally(plain_cli: Cli) -> None:
    branch = "map[string]interface {}[/x]"
    line = one_line(plain_cli("repo", "add", "https://h/x", "--branch", branch))
    assert line == f"error: branch: {branch!r} is not a valid branch name"

    url = f"http://127.0.0.1:{free_port()}/[/x]/map[string]interface {{}}.git"
    line = one_line(plain_cli("repo", "add", url, "--id", "brackets"))
    assert line.startswith(f"error: repository brackets ({url}): ")  # git's own complaint follows

    added = plain_cli("repo", "add", url, "--id", "brackets", "--no-check")
    assert added.returncode == 0 and f"registered: {url} (main)" in added.stdout, added.stderr
    listed = plain_cli("repo", "list")
    assert listed.returncode == 0 and url in listed.stdout, listed.stderr
    shown = plain_cli("repo", "show", "brackets")
    assert shown.returncode == 0 and f"url:           {url}" in shown.stdout, shown.stderr

    made = plain_cli("workflow", "create", "--id", "wf", "--repository", "brackets", "--name", branch, "--path", "[/x]")
    assert made.returncode == 0 and "created: brackets:[/x] -> namespace default" in made.stdout, made.stderr
    for args in (("workflow", "list"), ("workflow", "status", "wf")):
        r = plain_cli(*args)
        assert r.returncode == 0 and branch in r.stdout, (args, r.stdout, r.stderr)


@pytest.mark.cluster
def test_two_homes_keep_their_own_mirrors(cli: Cli, namespace: str, tmp_path: Path) -> None:
    work = make_repo(tmp_path / "shared", {"k8s/a.yaml": yaml.safe_dump(cm("two-homes", namespace, a="1"))})
    homes = {name: tmp_path / f"home-{name}" for name in ("a", "b")}
    clis = {}
    for name, home in homes.items():
        home.mkdir()
        # One build cache for both (as on any machine); nothing else said about where mirrors go.
        env = {**cli.env, "SLIPWAY_HOME": str(home), "SLIPWAY_CACHE": str(tmp_path / "shared-cache")}
        env.pop("SLIPWAY_GIT_CACHE")
        clis[name] = Cli(env, home, tmp_path)
        for args in (
            ("repo", "add", str(origin_of(work)), "--id", "same-id"),
            ("workflow", "create", "--id", "wf", "--repository", "same-id", "--path", "k8s", "--namespace", namespace),
        ):
            r = clis[name](*args)
            assert r.returncode == 0, r.stderr
        r = clis[name]("diff", "wf")
        assert r.returncode == 1, r.stderr
    mirrors = {name: list((home / "git" / "same-id").glob("*.git")) for name, home in homes.items()}
    assert all(len(m) == 1 and m[0].is_dir() for m in mirrors.values()), mirrors

    for args in (("workflow", "remove", "wf"), ("repo", "remove", "same-id")):
        assert clis["a"](*args).returncode == 0
    assert not (homes["a"] / "git" / "same-id").exists()
    assert mirrors["b"][0].is_dir() and (mirrors["b"][0] / "HEAD").is_file()
    r = clis["b"]("diff", "wf")
    assert r.returncode == 1 and "Creating ConfigMap/two-homes" in r.stdout, r.stderr
