"""Fixtures for engine tests: an Engine on an isolated state store, and real Git repositories."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slipway.engine import Engine
from slipway.source import GitSource
from tests.gitservers import commit, make_repo, origin_of, push
from tests.kubestore import open_backend
from tests.manifests import configmap, deployment, dump, service

__all__ = ["configmap", "deployment", "dump", "service"]


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The engine's store: sqlite, unless a module parametrizes it (``BOTH_BACKENDS``)."""
    return str(getattr(request, "param", "sqlite"))


# pytestmark of a module whose tests run against both stores.
BOTH_BACKENDS = pytest.mark.parametrize("store_backend", ["sqlite", "kubernetes"], indirect=True)


@pytest.fixture
def engine(
    cluster: Any, slipway_home: Path, tmp_path: Path, store_backend: str, request: pytest.FixtureRequest
) -> Iterator[Engine]:
    store = open_backend(store_backend, request, slipway_home)
    eng = Engine(store, GitSource(cache_dir=tmp_path / "git-cache", home=slipway_home))
    yield eng
    eng.store.close()


@dataclass
class Repo:
    work: Path

    @property
    def url(self) -> str:
        return str(origin_of(self.work))

    def commit(self, files: dict[str, Any], message: str = "change") -> str:
        sha = commit(self.work, files, message)
        push(self.work)
        return sha


@pytest.fixture
def make_git(tmp_path: Path):  # type: ignore[no-untyped-def]
    """make_git({"path/file.yaml": text}) -> Repo: a real repository with a bare origin on disk."""
    counter = [0]

    def make(files: dict[str, Any]) -> Repo:
        counter[0] += 1
        return Repo(make_repo(tmp_path / f"repo{counter[0]}", files))

    return make


def add_workflow(engine: Engine, repo: Repo, namespace: str, path: str = "k8s", **options: Any) -> str:
    """Register the repository and a workflow for it aimed at ``namespace``; returns the workflow id."""
    policy = options.pop("sync_policy", {})
    repo_id = engine.register_repository({"url": repo.url}).id
    wf = engine.create_workflow(
        {
            "name": options.pop("name", "test"),
            "repository": repo_id,
            "target_path": path,
            "destination": {"namespace": namespace},
            "sync_policy": {"health_check": {"timeout": "60s"}, **policy},
            **options,
        }
    )
    return wf.id
