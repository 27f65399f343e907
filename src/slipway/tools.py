"""The external programs slipway's engine runs, found in one place: kustomize, helm, kubectl, sops.

Each is pinned here by version. The local-cluster builder (``slipway cluster build``) builds them
into ``$SLIPWAY_CACHE/bin/<component>-<version>/`` and marks a finished build with ``.complete``;
the engine looks there first and then on ``PATH``, so an installation that brings its own
binaries works too. The engine never imports the builder: it only knows where builds land.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import settings
from .errors import BuildError

KUBERNETES_VERSION = "v1.37.2"
KUSTOMIZE_VERSION = "v5.8.2"
HELM_VERSION = "v3.22.0"
SOPS_VERSION = "v3.13.3"


@dataclass(frozen=True)
class Tool:
    name: str  # the binary
    component: str  # the build that produces it
    version: str
    install_hint: str


TOOLS = {
    t.name: t
    for t in [
        Tool("kustomize", "kustomize", KUSTOMIZE_VERSION, "install kustomize v5"),
        Tool("helm", "helm", HELM_VERSION, "install helm v3 or v4"),
        Tool("kubectl", "kubernetes", KUBERNETES_VERSION, "install kubectl"),
        Tool("sops", "sops", SOPS_VERSION, "install sops v3"),
    ]
}


def built_dir(component: str, version: str) -> Path:
    """Where the builder puts a component's binaries."""
    return settings.cache() / "bin" / f"{component}-{version}"


def built(name: str) -> Path | None:
    """The pinned build of ``name`` when it is finished, else None."""
    tool = TOOLS[name]
    d = built_dir(tool.component, tool.version)
    path = d / name
    return path if (d / ".complete").exists() and path.is_file() else None


def find(name: str) -> str:
    """The binary to run for ``name``: our pinned build, else one on PATH; BuildError naming what to do."""
    path = built(name)
    if path is not None:
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    tool = TOOLS[name]
    raise BuildError(f"{name} is not built; run `slipway cluster build` (or {tool.install_hint})")
