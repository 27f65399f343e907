"""``slipway install`` and ``slipway migrate``: slipway's own objects in a cluster (the kubernetes store).

Thin entry points over :mod:`.store.kubernetes.install` and :mod:`.store.kubernetes.migrate`, kept
out of the engine's run path; the engine exposes them under the same names for the fronts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import settings
from .errors import ConfigError


def _connect() -> Any:
    from .kube import connect  # the HTTP client loads when a cluster is first reached

    return connect(None, None)


def manifests(
    namespace: str | None = None, targets: tuple[str, ...] = (), cluster_wide: bool = False
) -> list[dict[str, Any]]:
    """The CRDs, namespace and RBAC ``slipway install`` applies (``--print`` writes them)."""
    from .store.kubernetes import install, names

    return install.manifests(namespace or names.namespace(), targets, cluster_wide)


def install(namespace: str | None = None, targets: tuple[str, ...] = (), cluster_wide: bool = False) -> list[str]:
    """Apply :func:`manifests` to the cluster of ``KUBECONFIG``; refuses to downgrade a CRD."""
    from .store.kubernetes import install as kinstall
    from .store.kubernetes import names

    return kinstall.install(_connect(), namespace or names.namespace(), targets, cluster_wide)


def migrate(to: str, home: Path | None = None, say: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Copy the SQLite store of ``home`` into the store ``to`` names (``kubernetes``); idempotent."""
    if to != "kubernetes":
        raise ConfigError(f"--to: {to!r}: slipway migrates a SQLite store to kubernetes")
    from .store import Store
    from .store.kubernetes import KubernetesStore
    from .store.kubernetes.migrate import migrate as copy

    home = home or settings.home()
    if not (home / "state.db").is_file():
        raise ConfigError(f"there is no SQLite store to migrate in {home} (set SLIPWAY_HOME, or --home)")
    source = Store(home=home)
    try:
        return copy(source, KubernetesStore(), say)
    finally:
        source.close()
