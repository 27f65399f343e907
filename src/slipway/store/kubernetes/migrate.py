"""``slipway migrate --to kubernetes``: a SQLite store copied into the cluster, whole, as often as you like.

Repositories (credentials opened with the local key, sealed again with the cluster's), workflows,
their run state, inventories, every sync of the history with the objects it declared and backed
up (removed workflows' too), task executions, and API tokens (their salted hashes: a token keeps
working against the cluster store, and none is ever shown). The cluster store takes the SQLite store's
instance id: the objects in the cluster carry it, and a store of another id would see them as
someone else's. Running it again copies only what is missing and writes the same state again, so
an interrupted migration is finished by running it once more. It refuses while a sync runs in the
SQLite store, and a cluster store of another instance that already has workflows. A token whose
name the cluster store gives to another token already is left out, and said so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ConfigError
from ..sqlite import SqliteStore, owner_alive
from . import KubernetesStore, mapping
from .names import WORKFLOWS


def migrate(
    source: SqliteStore, target: KubernetesStore, say: Callable[[str], None] = lambda _: None
) -> dict[str, int]:
    counts = {"repositories": 0, "workflows": 0, "syncs": 0, "inventory": 0, "executions": 0, "tokens": 0}
    workflows = source.list_workflows()
    for wf in workflows:
        owner = source.workflow_state(wf.id)["sync_owner"]
        if owner and owner_alive(owner):
            raise ConfigError(f"workflow {wf.id} is syncing in the SQLite store; stop the controller and try again")
    _adopt_identity(source, target, say)
    for repo in source.list_repositories():
        target.put_repository(repo)
        counts["repositories"] += 1
    for wf in workflows:
        target.put_workflow(wf)
        counts["workflows"] += 1
        uid = str(target.workflow_obj(wf.id)["metadata"]["uid"])
        counts["syncs"] += _history(source, target, wf.id, uid)
        inventory = source.inventory(wf.id)
        target.set_inventory(wf.id, inventory)
        counts["inventory"] += len(inventory)
        _state(source, target, wf.id, len(source.history(wf.id)), len(inventory))
        say(f"workflow {wf.id}: copied")
    removed = [r[0] for r in source._conn().execute(
        "SELECT DISTINCT workflow_id FROM syncs WHERE removed_at IS NOT NULL")]  # fmt: skip
    for workflow_id in removed:
        counts["syncs"] += _history(source, target, workflow_id, "removed", removed=True)
    tasks = [r[0] for r in source._conn().execute("SELECT DISTINCT task_name FROM executions")]
    for task in tasks:
        counts["executions"] += target.import_executions(task, source.executions(task, limit=100000))
    counts["tokens"] = _tokens(source, target, say)
    return counts


def _tokens(source: SqliteStore, target: KubernetesStore, say: Callable[[str], None]) -> int:
    """Each token's row as it is (salt and hash: the token itself is nowhere to copy); by name only in what is said."""
    copied = 0
    for row in source.list_tokens():
        if target.get_token(row["id"]) is None:
            try:
                target.put_token(row)
            except ConfigError:
                say(f"token {row['name']}: the cluster store has another token of that name; this one was not copied")
                continue
        copied += 1
    return copied


def _adopt_identity(source: SqliteStore, target: KubernetesStore, say: Callable[[str], None]) -> None:
    if target.instance_id == source.instance_id:
        return
    if target.kube.list_metadata(WORKFLOWS, target.namespace):
        raise ConfigError(
            f"the cluster store in namespace {target.namespace} is instance {target.instance_id} and has workflows "
            f"already; the SQLite store is instance {source.instance_id}: the objects each applied carry its id, "
            "so one cannot take the other's (migrate into a namespace of its own)"
        )
    say(f"the cluster store takes the SQLite store's instance id {source.instance_id}")
    target.set_instance_id(source.instance_id)


def _history(source: SqliteStore, target: KubernetesStore, workflow_id: str, uid: str, removed: bool = False) -> int:
    copied = 0
    history = list(reversed(source.history(workflow_id, removed=removed)))  # oldest first
    for seq, result in enumerate(history, start=1):
        objects = {role: source.sync_objects(result.id, role) for role in ("desired", "backup")}
        copied += int(target.import_sync(result, uid, seq, objects))
    return copied


def _state(source: SqliteStore, target: KubernetesStore, workflow_id: str, seq: int, inventory: int) -> None:
    state = source.workflow_state(workflow_id)
    patch: dict[str, Any] = {mapping.STATE[k]: state[k] for k in mapping.STATE}
    patch["status"] = patch["status"] or "active"
    patch["syncSeq"] = seq
    patch["inventory"] = {"count": inventory}
    if state["last_sync_id"]:
        patch["lastSyncResult"] = mapping.last_sync_status(source.get_sync(state["last_sync_id"]))

    def mutate(obj: Any, status: dict[str, Any]) -> dict[str, Any]:
        return {**patch, "syncSeq": max(seq, int(status.get("syncSeq") or 0))}

    target.update_status(workflow_id, mutate)
