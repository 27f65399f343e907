"""Where slipway keeps things, from the environment, read at call time so tests can redirect them.

``SLIPWAY_HOME`` (default ``~/.local/share/slipway``) holds everything of one installation: the
state store, the local encryption key, pinned SSH host keys and the Git mirrors, so two homes never
touch each other's. ``SLIPWAY_CACHE`` (default ``~/.cache/slipway``) holds what any number of homes
may share: built binaries and the local cluster. ``SLIPWAY_GIT_HOST`` is the host an ``owner/name``
repository shorthand expands to.
"""

from __future__ import annotations

import os
from pathlib import Path

FIELD_MANAGER = "slipway"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_WORKFLOW = "slipway.dev/workflow"
LABEL_INSTANCE = "slipway.dev/instance"  # the state store that applied it
LABEL_CUSTOMIZATIONS = "slipway.dev/customizations"  # ConfigMaps of health scripts (kubernetes store)
ANNOTATION_PREFIX = "slipway.dev/"
HASH_ANNOTATION = ANNOTATION_PREFIX + "applied-hash"
# slipway's own notes on an object, never shown in a diff (what a repository declares always is).
BOOKKEEPING_ANNOTATIONS = (HASH_ANNOTATION,)
DEFAULT_GIT_HOST = "https://github.com"
# slipway's own secrets that may sit in its environment: never handed on to a hook.
SECRET_ENVIRONMENT = frozenset({"SLIPWAY_WEBHOOK_SECRET"})


def home() -> Path:
    return Path(os.environ.get("SLIPWAY_HOME") or "~/.local/share/slipway").expanduser()


def cache() -> Path:
    return Path(os.environ.get("SLIPWAY_CACHE") or "~/.cache/slipway").expanduser()


def state_db() -> Path:
    return home() / "state.db"


def default_git_host() -> str:
    return (os.environ.get("SLIPWAY_GIT_HOST") or DEFAULT_GIT_HOST).rstrip("/")


def helm_cache() -> Path:
    """Chart packages fetched for chart dependencies: ``$SLIPWAY_HELM_CACHE``, else ``$SLIPWAY_CACHE/helm``."""
    override = os.environ.get("SLIPWAY_HELM_CACHE")
    return Path(override).expanduser() if override else cache() / "helm"


def git_cache() -> Path:
    """Git mirrors: ``$SLIPWAY_GIT_CACHE``, else ``$SLIPWAY_HOME/git``.

    Not under ``$SLIPWAY_CACHE``, which homes share: mirrors are named by repository id, and
    removing a repository in one home would remove another home's mirror of the same id. They
    also keep every revision ever deployed (for rollbacks), which is state, not a cache.
    """
    override = os.environ.get("SLIPWAY_GIT_CACHE")
    return Path(override).expanduser() if override else home() / "git"


def render_timeout() -> float:
    """Seconds a render of one workflow path may take: ``$SLIPWAY_RENDER_TIMEOUT`` (a duration), default 60s."""
    from .durations import parse_duration

    seconds = parse_duration(os.environ.get("SLIPWAY_RENDER_TIMEOUT") or "60s", key="SLIPWAY_RENDER_TIMEOUT")
    if seconds <= 0:
        from .errors import ConfigError

        raise ConfigError("SLIPWAY_RENDER_TIMEOUT: must be more than 0")
    return seconds


_SIZES = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30}


def render_memory() -> int:
    """Bytes of memory one render process may hold: ``$SLIPWAY_RENDER_MEMORY`` (``1Gi``, ``512Mi``), default 1Gi."""
    import re

    text = (os.environ.get("SLIPWAY_RENDER_MEMORY") or "1Gi").strip()
    m = re.fullmatch(r"(\d+)\s*([kKmMgG]i?)?", text)
    if not m or int(m[1]) * _SIZES[(m[2] or "").lower()] < 32 << 20:
        from .errors import ConfigError

        raise ConfigError(f"SLIPWAY_RENDER_MEMORY: {text!r} is not a size of 32Mi or more (e.g. 1Gi, 512Mi)")
    return int(m[1]) * _SIZES[(m[2] or "").lower()]


def helm_repositories() -> list[str]:
    """Chart repository URL prefixes slipway may fetch from besides the registered ones: ``$SLIPWAY_HELM_REPOSITORIES``
    (separated by commas or spaces)."""
    text = os.environ.get("SLIPWAY_HELM_REPOSITORIES") or ""
    return [u.rstrip("/") for u in text.replace(",", " ").split() if u.startswith(("http://", "https://"))]


def kustomize_allow_remote(workflow_id: str) -> bool:
    """Whether kustomize may fetch remote resources for ``workflow_id``: an administrator lists the workflow
    ids (or ``*``) in ``$SLIPWAY_KUSTOMIZE_ALLOW_REMOTE``; no workflow can allow it itself."""
    ids = (os.environ.get("SLIPWAY_KUSTOMIZE_ALLOW_REMOTE") or "").replace(",", " ").split()
    return "*" in ids or workflow_id in ids
