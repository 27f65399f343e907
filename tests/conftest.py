"""Shared fixtures: the real local control plane, a namespace per test, an isolated slipway home.

The cluster fixture brings the local control plane up once per session, reusing one that
already runs; if this session started it, it stops it at the end (set SLIPWAY_KEEP_CLUSTER=1 to
keep it). Nothing here fakes Kubernetes: every cluster test talks to a real kube-apiserver.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.cluster import local
from slipway.kube import Kube, forget_connections
from tests.chartrepo import chart_repo
from tests.gitservers import git_config, git_http_server, git_ssh_server, slipway_env
from tests.kubestore import slipway_crds, slipway_namespace
from tests.registry import oci_registry, oci_registry_tls

# The real Git servers, the chart repository, the kubernetes store's CRDs and namespaces: helpers of
# tests/gitservers.py, tests/chartrepo.py and tests/kubestore.py.
__all__ = [
    "chart_repo",
    "git_config",
    "git_http_server",
    "git_ssh_server",
    "oci_registry",
    "oci_registry_tls",
    "slipway_crds",
    "slipway_env",
    "slipway_namespace",
]


@pytest.fixture(scope="session")
def cluster() -> Iterator[local.ClusterInfo]:
    was_running = local.status()["running"]
    info = local.up(log=lambda line: print(f"[cluster] {line}"))
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(info.kubeconfig)
    yield info
    forget_connections()
    if previous is None:
        os.environ.pop("KUBECONFIG", None)
    else:
        os.environ["KUBECONFIG"] = previous
    if not was_running and not os.environ.get("SLIPWAY_KEEP_CLUSTER"):
        local.down()


@pytest.fixture(scope="session")
def kube(cluster: local.ClusterInfo) -> Iterator[Kube]:
    k = Kube(cluster.kubeconfig)
    yield k
    k.close()


def _ns_name(nodeid: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", nodeid.split("::")[-1].lower()).strip("-")
    return f"t-{base[:48].strip('-')}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = _ns_name(request.node.nodeid)
    ns_info = kube.discovery.lookup("v1", "Namespace")
    kube.apply(ns_info, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, field_manager="tests")
    yield name
    kube.delete(ns_info, "", name)


@pytest.fixture
def slipway_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated SLIPWAY_HOME (state store, key); the cache with built binaries stays shared."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SLIPWAY_HOME", str(home))
    return home
