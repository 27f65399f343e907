"""R3 Git goes wrong: the server down, wrong credentials, a deleted branch, a rewritten history, a commit
that deletes the target path, a slow server and a huge repository — with the controller running.

For each fault: the workflow is degraded (or its sync failed) with a message naming the
repository and the cause, nothing is applied or pruned, the controller keeps serving the other
workflow (a commit there is applied meanwhile), and once Git is right again the workflow
recovers by itself.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from slipway.controller import Controller
from slipway.engine import Engine
from slipway.kube import Kube
from tests.gitservers import HttpGitServer, commit, git, make_repo, origin_of, push
from tests.reliability.relay import relay

from .conftest import Cli, size


def cm(name: str, namespace: str, value: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                           "data": {"v": value}})  # fmt: skip


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_r3_git_goes_wrong(
    cli: Cli, kube: Kube, namespace: str, tmp_path: Path, git_http_server: HttpGitServer, record: Any
) -> None:
    server = git_http_server
    name = f"r3-{secrets.token_hex(4)}"
    user, password = f"{name}-user", "pw-" + secrets.token_hex(8)
    server.add_user(user, password)
    # The healthy workflow reads a repository on disk: nothing done to the server reaches it.
    healthy = make_repo(tmp_path / "healthy", {"k8s/a.yaml": cm("healthy", namespace, "0")})
    faulty = server.create_repo(f"{name}/faulty", {"k8s/a.yaml": cm("faulty", namespace, "0")})
    env = {**cli.env, "R3_PASSWORD": password}
    user_cli = Cli(env, cli.home, cli.cwd)
    for repo, work in (("healthy", healthy), ("faulty", faulty)):
        del work
        url = str(origin_of(healthy)) if repo == "healthy" else server.url(f"{name}/{repo}")
        extra = ["--username", user, "--password-env", "R3_PASSWORD"] if repo == "faulty" else []
        assert user_cli("repo", "add", url, "--id", repo, "--poll-interval", "1s", *extra).returncode == 0
        assert cli("workflow", "create", "--id", repo, "--repository", repo, "--path", "k8s", "--namespace",
                   namespace, "--auto-sync", "--prune", "--health-timeout", "20s").returncode == 0  # fmt: skip
    engine: Engine = cli.engine()
    ctl = Controller(engine, tick=0.1)
    ctl.start()
    tried, held = 0, 0
    value = {"healthy": 0, "faulty": 0}

    def live(cm_name: str) -> str | None:
        obj = kube.get(kube.discovery.lookup("v1", "ConfigMap"), namespace, cm_name)
        return None if obj is None else obj["data"]["v"]

    def bump(repo: str, work: Path) -> None:
        value[repo] += 1
        commit(work, {"k8s/a.yaml": cm(repo, namespace, str(value[repo]))})
        push(work)

    def fault(what: str, cause: str, start: Callable[[], None], end: Callable[[], None], *, status: tuple[str, ...] =
              ("degraded",)) -> None:  # fmt: skip
        nonlocal tried, held
        tried += 1
        faulty_before = live("faulty")
        start()
        wait_until(lambda: engine.run_state("faulty")["status"] in status and cause in
                   engine.run_state("faulty")["status_message"], 40, f"{what}: faulty degraded saying {cause!r}")  # fmt: skip
        message = engine.run_state("faulty")["status_message"]
        assert "faulty" in message, message  # names the repository (or its sync)
        bump("healthy", healthy)  # the controller keeps serving the other workflow
        wait_until(lambda: live("healthy") == str(value["healthy"]), 30, f"{what}: the healthy workflow is served")
        assert live("faulty") == faulty_before, f"{what}: something was applied to the faulty workflow"
        end()
        bump("faulty", faulty)
        wait_until(lambda: live("faulty") == str(value["faulty"]) and engine.run_state("faulty")["status"] == "synced",
                   90, f"{what}: faulty recovers by itself")  # fmt: skip
        held += 1

    try:
        wait_until(lambda: live("healthy") == "0" and live("faulty") == "0", 30, "first syncs")
        fault("server down", "cannot reach the Git server", server.stop, server.start)
        fault("wrong credentials", "refused the username and password",
              lambda: server.add_user(user, "changed"), lambda: server.add_user(user, password))  # fmt: skip
        bare = server.root / f"{name}/faulty.git"
        fault("branch deleted", 'branch "main" does not exist',
              lambda: git("--git-dir", str(bare), "branch", "-m", "main", "moved"),
              lambda: git("--git-dir", str(bare), "branch", "-m", "moved", "main"))  # fmt: skip

        def delete_path() -> None:
            commit(faulty, {"k8s/a.yaml": None, "other/x.yaml": cm("other", namespace, "x")})
            push(faulty)

        fault("target path deleted", "does not exist", delete_path, lambda: None, status=("failed", "degraded"))

        # A rewritten history (a force-push of an unrelated root commit): Git is the truth, it is applied.
        tried += 1
        git("checkout", "--quiet", "--orphan", "rewritten", cwd=faulty)
        value["faulty"] += 1
        commit(faulty, {"k8s/a.yaml": cm("faulty", namespace, str(value["faulty"]))}, message="rewritten")
        push(faulty, "main")
        wait_until(lambda: live("faulty") == str(value["faulty"]), 30, "force-pushed history applied")
        held += 1

        # A slow server (every chunk held 0.2 s) and a huge repository: slower, never wrong.
        tried += 1
        big = server.create_repo(f"{name}/huge", {"k8s/a.yaml": cm("huge", namespace, "0"), **{
            f"assets/blob-{i}.bin": os.urandom(1024 * 1024).hex() for i in range(size(4, 40))}})  # fmt: skip
        del big
        with relay(server.port, 0.2) as port:
            url = f"http://127.0.0.1:{port}/public/{name}/huge.git"
            assert cli("repo", "add", url, "--id", "huge", "--poll-interval", "1s").returncode == 0
            assert cli("workflow", "create", "--id", "huge", "--repository", "huge", "--path", "k8s",
                       "--namespace", namespace, "--auto-sync").returncode == 0  # fmt: skip
            started = time.monotonic()
            wait_until(lambda: live("huge") == "0", 240, "the huge repository through the slow server")
            took = time.monotonic() - started
            bump("healthy", healthy)
            wait_until(lambda: live("healthy") == str(value["healthy"]), 30, "served while the huge one fetched")
        held += 1
    finally:
        ctl.stop(15)
        if server.proc is None or server.proc.poll() is not None:
            server.start()  # the session's other tests need it back whatever happened here
        server.add_user(user, password)
    record("R3", "Git goes wrong (server down, credentials, branch deleted, path deleted, force-push, slow and huge):"
           " degraded with the cause, nothing applied, the others served, recovered by itself", tried, held,
           "make reliability  # tests/reliability/test_r3_git.py", huge_repository_seconds=round(took, 1))  # fmt: skip
