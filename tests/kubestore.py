"""Fixtures for the kubernetes store: the CRDs once per session, a namespace of its own per test.

``slipway_crds`` installs the CRDs idempotently and never removes them (another test session may
be using them). ``slipway_namespace`` gives each test its own SLIPWAY_NAMESPACE, so tests never
share an instance id, a key, Leases or records, and deletes it afterwards. ``open_backend`` opens
a store of either backend, for tests parametrized by backend.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway import tools
from slipway.kube import Kube
from slipway.store import StateStore, Store
from slipway.store.kubernetes import KubernetesStore, install

BACKENDS = ["sqlite", pytest.param("kubernetes", marks=pytest.mark.cluster)]


@pytest.fixture(scope="session")
def slipway_crds(kube: Kube) -> None:
    install.install_crds(kube)


@pytest.fixture
def slipway_namespace(
    kube: Kube, slipway_crds: None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    name = f"sw-{base}-{secrets.token_hex(3)}"
    monkeypatch.setenv("SLIPWAY_NAMESPACE", name)
    ns_info = kube.discovery.lookup("v1", "Namespace")
    kube.apply(ns_info, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, field_manager="tests")
    yield name
    kube.delete(ns_info, "", name)


def open_backend(backend: str, request: pytest.FixtureRequest, home: Path) -> StateStore:
    if backend == "sqlite":
        return Store(home=home)
    request.getfixturevalue("slipway_namespace")
    return KubernetesStore()


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    out = subprocess.run(
        [tools.find("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout + out.stderr if not check else out.stdout


def everything_in(kubeconfig: Path, namespace: str) -> str:
    """Every object slipway keeps in its namespace, as ``kubectl get -o yaml`` prints them."""
    return kubectl(kubeconfig, "-n", namespace, "get", "secrets,configmaps,leases,workflows,repositories", "-o", "yaml")


def decoded_secrets(kubeconfig: Path, namespace: str) -> str:
    """The values of every Secret in the namespace, base64-decoded (what a reader of them would see)."""
    import base64

    doc: dict[str, Any] = yaml.safe_load(kubectl(kubeconfig, "-n", namespace, "get", "secrets", "-o", "yaml"))
    out = []
    for item in doc.get("items") or []:
        for value in (item.get("data") or {}).values():
            out.append(base64.b64decode(value).decode("latin-1"))
    return "\n".join(out)
