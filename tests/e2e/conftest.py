"""End-to-end fixtures: the ``slipway`` command run as a user runs it, against the local cluster."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.engine import Engine
from slipway.source import GitSource
from slipway.store import StateStore, Store
from slipway.store.kubernetes import KubernetesStore
from tests.gitservers import GitConfig, HttpGitServer, commit, push

SEED = Path(__file__).parents[2] / "examples" / "seed"


@dataclass
class Cli:
    env: dict[str, str]
    home: Path
    cwd: Path

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            env=self.env,
            cwd=self.cwd,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "slipway", *args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def engine(self) -> Engine:
        """An engine on the same state store, to look at what the commands did."""
        store: StateStore = Store(home=self.home)
        if self.env.get("SLIPWAY_STORE") == "kubernetes":
            store = KubernetesStore(namespace=self.env["SLIPWAY_NAMESPACE"])
        return Engine(store, GitSource(cache_dir=Path(self.env["SLIPWAY_GIT_CACHE"]), home=self.home))


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The commands' store: sqlite, unless a test parametrizes it (``BOTH_BACKENDS``)."""
    return str(getattr(request, "param", "sqlite"))


BOTH_BACKENDS = pytest.mark.parametrize("store_backend", ["sqlite", "kubernetes"], indirect=True)


@pytest.fixture
def cli(
    cluster: Any, slipway_home: Path, tmp_path: Path, git_config: GitConfig, store_backend: str,
    request: pytest.FixtureRequest,
) -> Cli:  # fmt: skip
    env = {
        **os.environ,
        "SLIPWAY_HOME": str(slipway_home),
        "SLIPWAY_GIT_CACHE": str(tmp_path / "git-cache"),
        "KUBECONFIG": str(cluster.kubeconfig),
        "COLUMNS": "200",
    }
    if store_backend == "kubernetes":
        env.update(SLIPWAY_STORE="kubernetes", SLIPWAY_NAMESPACE=request.getfixturevalue("slipway_namespace"))
    return Cli(env, slipway_home, tmp_path)


def manifests(namespace: str, *objs: dict[str, Any]) -> str:
    """YAML documents with every object pinned to ``namespace``."""
    out = []
    for obj in objs:
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        out.append(obj)
    return yaml.safe_dump_all(out, sort_keys=False)


@dataclass
class Company:
    """Repositories standing in for ``https://github.com/company/<name>`` on the local Git server."""

    server: HttpGitServer
    prefix: str
    works: dict[str, Path] = field(default_factory=dict)

    def create(self, name: str, files: dict[str, Any], branch: str = "main") -> Path:
        work = self.server.create_repo(f"{self.prefix}/{name}", files, branch=branch)
        self.works[name] = work
        return work

    def commit(self, name: str, files: dict[str, Any]) -> str:
        sha = commit(self.works[name], files)
        push(self.works[name])
        return sha


@pytest.fixture
def company(git_http_server: HttpGitServer, git_config: GitConfig) -> Company:
    """Git's own URL rewriting sends the examples' placeholder URLs to the local server."""
    prefix = "company-" + secrets.token_hex(4)
    git_config.insteadof(f"{git_http_server.public_base_url}{prefix}/", "https://github.com/company/")
    return Company(git_http_server, prefix)
