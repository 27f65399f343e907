"""`slipway repo` as a user runs it against real Git servers: secrets in URLs, and one home's
mirrors apart from another's."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitservers import HttpGitServer, make_repo, origin_of

from .conftest import Cli


def cm(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


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
    assert "git fetch for repository tokrepo" in diff.stderr  # the --debug log is there
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
