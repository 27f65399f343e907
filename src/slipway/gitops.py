"""The seed's GitOps API for Python: ``from slipway import gitops``.

Every function of the seed, under the same name, with the same parameters — one dict, or the
same keys as keyword arguments — and the same return shapes. Each call goes to one shared
:class:`~slipway.engine.Engine` (created on first use from ``SLIPWAY_HOME``; replace it with
:func:`use_engine`). As the seed says, ``sync_workflow`` and ``rollback_workflow`` answer with a
boolean and log why they failed; ``generate_diff`` raises a clear error when it cannot compute a
plan, and otherwise always returns the full table, empty lists included.

    from slipway import gitops

    repo = gitops.register_repository(url="https://git.example.com/k8s.git", branch="main")
    wf = gitops.create_workflow(name="web", repository=repo, target_path="prod")
    diff = gitops.generate_diff(wf)
    if diff["summary"]["conflict_count"] == 0:
        gitops.sync_workflow(wf)
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .engine import Engine
from .errors import SlipwayError, describe

log = logging.getLogger("slipway")

_engine: Engine | None = None
_lock = threading.Lock()


def engine() -> Engine:
    global _engine
    with _lock:
        if _engine is None:
            _engine = Engine()
        return _engine


def use_engine(new: Engine | None) -> None:
    """Point the API at another engine (another state store); None resets to the default."""
    global _engine
    from . import controller

    controller.stop_default()
    with _lock:
        _engine = new


def _config(config: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    if config is not None and not isinstance(config, dict):
        from .errors import ConfigError

        raise ConfigError(f"expected a table of settings, got {type(config).__name__}")
    return {**(config or {}), **kwargs}


def workflow(config: dict[str, Any] | None = None, /, **kwargs: Any) -> dict[str, Any]:
    """Register a repository and a workflow in one call; returns the seed's table."""
    return engine().quick_workflow(_config(config, kwargs))


def register_repository(config: dict[str, Any] | None = None, /, **kwargs: Any) -> str:
    """Register (or update) a Git repository; returns its id."""
    return engine().register_repository(_config(config, kwargs)).id


def create_workflow(config: dict[str, Any] | None = None, /, **kwargs: Any) -> str:
    """Create (or update) a workflow; returns its id."""
    return engine().create_workflow(_config(config, kwargs)).id


def get_workflow_status(workflow_id: str) -> dict[str, Any]:
    return engine().status(workflow_id)


def list_workflows() -> list[dict[str, Any]]:
    eng = engine()
    return [eng.status(wf.id) for wf in eng.workflows()]


def sync_workflow(workflow_id: str) -> bool:
    """Sync now; True when the sync succeeded. Failures are logged with their reason."""
    try:
        result = engine().sync(workflow_id)
    except SlipwayError as e:
        log.error("sync_workflow(%r): %s", workflow_id, describe(e))
        return False
    if result.status != "succeeded":
        log.error("sync_workflow(%r): %s", workflow_id, result.message)
    return result.status == "succeeded"


def generate_diff(workflow_id: str) -> dict[str, Any]:
    """What a sync would change now, as the seed's table; raises when the plan cannot be computed."""
    if not workflow_id:
        from .errors import NotFoundError

        raise NotFoundError("generate_diff: no workflow id given")
    return engine().plan(workflow_id).to_seed()


preview_changes = generate_diff


def rollback_workflow(workflow_id: str | None, reason: str = "") -> bool:
    """Roll back to the previous successful sync; True on success, False (logged) otherwise."""
    try:
        result = engine().rollback(workflow_id, reason)
    except SlipwayError as e:
        log.error("rollback_workflow(%r): %s", workflow_id, describe(e))
        return False
    if result.status != "succeeded":
        log.error("rollback_workflow(%r): %s", workflow_id, result.message)
    return result.status == "succeeded"


def start_auto_sync() -> None:
    """Start the auto-sync controller in the background (a second call is harmless)."""
    from . import controller

    controller.start_default(engine())


def stop_auto_sync() -> None:
    """Stop the auto-sync controller; an in-flight sync finishes or is cancelled safely."""
    from . import controller

    controller.stop_default()


__all__ = [
    "create_workflow",
    "generate_diff",
    "get_workflow_status",
    "list_workflows",
    "preview_changes",
    "register_repository",
    "rollback_workflow",
    "start_auto_sync",
    "stop_auto_sync",
    "sync_workflow",
    "use_engine",
    "workflow",
]
