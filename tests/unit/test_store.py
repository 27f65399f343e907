"""The state store on its own: upserts, transactions, the sync claim, recovery after a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slipway.errors import ConfigError, NotFoundError, SyncInProgress
from slipway.kube import ObjectRef
from slipway.model import Repository, Workflow
from slipway.results import SyncResult
from slipway.store import Store
from slipway.store.sqlite.claims import _HOST


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(home=tmp_path)


def repo(store: Store, rid: str = "r", **extra: object) -> Repository:
    r = Repository.from_config({"id": rid, "url": "https://git.example.com/x.git", **extra})
    store.put_repository(r)
    return r


def test_registering_an_existing_id_updates_it(store: Store) -> None:
    repo(store, branch="main")
    repo(store, branch="develop", poll_interval="5m")
    assert [r.branch for r in store.list_repositories()] == ["develop"]
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "name": "one"}))
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "name": "two", "auto_sync": True}))
    (wf,) = store.list_workflows()
    assert wf.name == "two" and wf.auto_sync


def test_a_workflow_needs_its_repository_and_keeps_it_alive(store: Store) -> None:
    with pytest.raises(NotFoundError, match="repository 'nope' is not registered"):
        store.put_workflow(Workflow.from_config({"id": "w", "repository": "nope"}))
    assert store.list_workflows() == []
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    with pytest.raises(ConfigError, match="used by workflow"):
        store.delete_repository("r")


def test_another_process_sees_what_was_stored(store: Store, tmp_path: Path) -> None:
    repo(store)
    code = (
        "from pathlib import Path; from slipway.store import Store; "
        f"print(Store(home=Path({str(tmp_path)!r})).get_repository('r').url)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "https://git.example.com/x.git"


def test_credentials_are_encrypted_at_rest(store: Store, tmp_path: Path) -> None:
    repo(store, credentials={"type": "userpass", "username": "deploy", "password": "pw-very-secret-1"})
    assert store.get_repository("r").credentials.password == "pw-very-secret-1"  # type: ignore[union-attr]
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"pw-very-secret-1" not in raw and b"deploy" not in raw
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_a_failed_transaction_changes_nothing(store: Store) -> None:
    repo(store)
    with pytest.raises(RuntimeError), store.tx() as c:
        c.execute("UPDATE repositories SET branch = 'changed'")
        raise RuntimeError("boom")
    assert store.get_repository("r").branch == "main"


def _result(sync_id: str) -> SyncResult:
    return SyncResult(sync_id, "w", "running", "2026-01-01T00:00:00Z", None, "")


def test_one_claim_per_workflow_and_recovery_when_its_process_died(store: Store, tmp_path: Path) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    store.claim("w", "sync-1")
    store.start_sync(_result("sync-1"))
    with pytest.raises(SyncInProgress, match="sync in progress"):
        store.claim("w", "sync-2")
    store.release("w", "sync-1")
    store.claim("w", "sync-2")
    store.release("w", "sync-2")

    # A claim and a running sync left by a process that is gone (a pid that exited).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{_HOST}:{dead.pid}:12345"
    with store.tx() as c:
        c.execute("UPDATE workflows SET sync_owner = ?, sync_id = 'sync-1' WHERE id = 'w'", (owner,))
        c.execute("UPDATE syncs SET owner = ? WHERE id = 'sync-1'", (owner,))
    reopened = Store(home=tmp_path)
    assert reopened.get_sync("sync-1").status == "interrupted"
    assert "interrupted" in reopened.get_sync("sync-1").message
    state = reopened.workflow_state("w")
    assert state["sync_owner"] is None and state["status"] == "failed"
    reopened.claim("w", "sync-3")


def test_inventory_and_sync_objects_round_trip(store: Store) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    ref = ObjectRef("apps", "Deployment", "ns", "web")
    store.add_inventory("w", {ref: "apps/v1"})
    assert store.inventory("w") == {ref: "apps/v1"}
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    store.start_sync(_result("sync-9"))
    store.put_sync_objects("sync-9", "backup", [(ref, "apps/v1", "update", obj)])
    store.put_sync_objects("sync-9", "desired", [(ref, "apps/v1", "update", obj)])  # same content: one blob
    assert store.sync_objects("sync-9", "backup") == [(ref, "apps/v1", "update", obj)]
    count = store._conn().execute("SELECT COUNT(*) FROM blobs").fetchone()[0]
    assert count == 1


def test_a_token_an_older_slipway_stored_in_a_url_is_sealed_on_open(tmp_path: Path) -> None:
    import sqlite3

    token = "ghp_" + "a1b2c3d4e5f6" * 3
    Store(home=tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db")
    # As a store written before URLs were split holds it: the token in plain text in the url column.
    db.execute(
        "INSERT INTO repositories (id, url, branch, poll_interval, credentials, created_at, updated_at) "
        "VALUES ('old', ?, 'main', '30s', NULL, 0, 0)",
        (f"https://{token}@git.example.com/x.git",),
    )
    db.commit()
    db.close()
    store = Store(home=tmp_path)
    r = store.get_repository("old")
    assert r.url == "https://git.example.com/x.git"
    assert r.credentials is not None and r.credentials.token == token
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert token.encode() not in raw
