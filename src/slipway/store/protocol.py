"""What the engine, the controller and the fronts need from state, as one typed protocol.

A store keeps repositories and workflows (their configuration), each workflow's run state (status,
the revision live, a rollback's hold), the one-sync-per-workflow claim, the record of every sync
and rollback with the objects it applied and backed up, and the inventory of objects each workflow
owns. SQLite (:mod:`.sqlite`) is the embedded default; every other backend implements the same
methods with the same guarantees: a sync's record is written in whole transactions (never half),
a claim is exclusive across processes, and what was recorded is never lost (only a workflow's
``history_limit`` trims its oldest syncs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..kube.objects import ObjectRef
from ..model import Repository, Workflow
from ..results import SyncResult

# (ref, apiVersion, action, object) rows a sync keeps: role "desired" (what it declared) or
# "backup" (what slipway had applied to an object before the sync changed or deleted it).
SyncObject = tuple[ObjectRef, str, str, Any]


class ClaimLoss(threading.Event):
    """A sync's cancel event that its claim can set too: the store sets it (saying why) when it finds the
    claim is no longer the sync's, and :meth:`lost` asks the store at once (``probe``) before the sync
    changes anything more. Set by the caller's cancel as well (:meth:`follow`), with no reason."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = ""
        self.probe: Callable[[], str | None] = lambda: None  # the store's: why the claim is not surely ours
        self._done = threading.Event()

    def lose(self, reason: str) -> None:
        if not self.is_set():
            self.reason = reason
            self.set()

    def lost(self) -> bool:
        """Whether the claim is gone (or cannot be shown to be held): checked before each apply wave."""
        if not self.is_set():
            why = self.probe()
            if why:
                self.lose(why)
        return bool(self.reason)

    def follow(self, parent: threading.Event | None) -> ClaimLoss:
        """Be set when ``parent`` is (a server's or controller's event, shared by many syncs, which a lost
        claim must not set), until :meth:`stop`."""
        if parent is not None:
            threading.Thread(target=self._follow, args=(parent,), name="slipway-cancel", daemon=True).start()
        return self

    def stop(self) -> None:
        """The run is over: stop following the caller's event."""
        self._done.set()

    def _follow(self, parent: threading.Event) -> None:
        while not self._done.is_set() and not self.is_set():
            if parent.wait(0.2):
                self.set()


@runtime_checkable
class StateStore(Protocol):
    @property
    def instance_id(self) -> str:
        """This store's identity, stamped on every object it applies: two stores never share objects."""
        ...

    def close(self) -> None: ...

    # -- repositories --------------------------------------------------------------------------------
    def put_repository(self, repo: Repository) -> None: ...
    def get_repository(self, repo_id: str) -> Repository: ...
    def list_repositories(self) -> list[Repository]: ...
    def delete_repository(self, repo_id: str) -> None: ...

    # -- workflows -----------------------------------------------------------------------------------
    def put_workflow(self, wf: Workflow) -> None: ...
    def get_workflow(self, workflow_id: str) -> Workflow: ...
    def list_workflows(self) -> list[Workflow]: ...
    def remove_workflow(self, workflow_id: str) -> None:
        """Forget the workflow and its inventory; its history stays, marked removed."""
        ...

    def config_version(self) -> tuple[Any, ...]:
        """Changes whenever a repository or workflow is added, updated or removed (not on syncs)."""
        ...

    def workflow_state(self, workflow_id: str) -> dict[str, Any]:
        """status, status_message, hold_revision, applied_revision, last_sync_id, sync_owner, sync_id."""
        ...

    def set_workflow_state(self, workflow_id: str, **fields: Any) -> None: ...

    # -- the one-sync-per-workflow claim ---------------------------------------------------------------
    def claim(self, workflow_id: str, sync_id: str, lost: ClaimLoss | None = None) -> None:
        """Claim the workflow for one sync or rollback; SyncInProgress when someone alive holds it.
        ``lost`` is set (with a reason) when the store finds the claim no longer the sync's."""
        ...

    def release(self, workflow_id: str, sync_id: str) -> None: ...
    def recover_interrupted(self) -> list[str]: ...
    def unlock(self, workflow_id: str) -> dict[str, Any] | None:
        """Release a claim whose holder cannot be seen alive and record its sync interrupted;
        SyncInProgress when the holder is alive. ``{"syncId", "owner", "holder"}``, None if unclaimed."""
        ...

    # -- syncs, rollbacks and what they applied -------------------------------------------------------
    def start_sync(self, result: SyncResult) -> None: ...
    def update_sync(self, result: SyncResult) -> None: ...
    def finish_sync(
        self,
        result: SyncResult,
        *,
        workflow_status: str,
        status_message: str,
        inventory: dict[ObjectRef, str] | None = None,
        applied_revision: str | None = None,
        hold_revision: str | bool | None = False,
        mark_rolled_back: list[str] = ...,
        history_limit: int | None = None,
    ) -> None: ...
    def get_sync(self, sync_id: str) -> SyncResult: ...
    def history(
        self, workflow_id: str, limit: int | None = None, kind: str | None = None, *, removed: bool = False
    ) -> list[SyncResult]:
        """Newest first; ``removed``: the history a removed workflow of that id left."""
        ...

    def put_sync_objects(self, sync_id: str, role: str, objects: list[SyncObject]) -> None: ...
    def sync_objects(self, sync_id: str, role: str) -> list[SyncObject]: ...
    def add_inventory(self, workflow_id: str, entries: dict[ObjectRef, str]) -> None: ...
    def inventory(self, workflow_id: str) -> dict[ObjectRef, str]: ...

    # -- task executions (the Lua ai module) ----------------------------------------------------------
    def record_execution(
        self, task_name: str, command: str, success: bool, duration: float | None, message: str, details: Any
    ) -> None: ...
    def executions(self, task_name: str, limit: int = 200) -> list[dict[str, Any]]: ...

    # -- API tokens (a salted hash each, never the token) ----------------------------------------------
    def put_token(self, token: dict[str, Any]) -> None:
        """Store a new token's row (id, name, role, salt, hash, created_at, created_by, last_used_at);
        ConfigError when its name is taken."""
        ...

    def get_token(self, token_id: str) -> dict[str, Any] | None: ...
    def list_tokens(self) -> list[dict[str, Any]]: ...
    def delete_token(self, name: str) -> bool:
        """Revoke the token named ``name``; False when there is none."""
        ...

    def touch_token(self, token_id: str, at: float) -> None: ...

    # -- what replicas tell each other (a server that receives, a controller that syncs) ---------------
    def note_push(self, repo_ids: list[str]) -> None:
        """A webhook saw a push to these repositories: move their push marks."""
        ...

    def pushes(self) -> dict[str, str]:
        """Each repository's push mark (it changes on every push noted); cheap, read about once a second."""
        ...

    def sync_feed(self, cursor: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
        """The ``started`` and ``finished`` events of syncs other processes ran since ``cursor`` (None:
        from now on, nothing yet), and the cursor to go on from."""
        ...

    # -- dashboard sessions (by a hash of the session id, never the id) ---------------------------------
    def put_session(self, key: str, row: dict[str, Any]) -> None:
        """token_id, name, role, created, seen, expires."""
        ...

    def get_session(self, key: str) -> dict[str, Any] | None: ...
    def touch_session(self, key: str, at: float) -> None: ...
    def delete_session(self, key: str) -> None: ...
    def expire_sessions(self, now: float, idle: float) -> int: ...


class SessionRows(Protocol):
    """The part of a store that keeps dashboard sessions: what the server's session table is given."""

    def put_session(self, key: str, row: dict[str, Any]) -> None: ...
    def get_session(self, key: str) -> dict[str, Any] | None: ...
    def touch_session(self, key: str, at: float) -> None: ...
    def delete_session(self, key: str) -> None: ...
    def expire_sessions(self, now: float, idle: float) -> int: ...


__all__ = ["SessionRows", "StateStore", "SyncObject"]
