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
