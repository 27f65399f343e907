"""The state store on its own, for both backends: upserts, the sync claim, recovery after a crash, records.

Each test runs against SQLite and against the kubernetes store (on the local control plane, in a
namespace of its own); what only one backend has (SQLite's transactions) is tested on that one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slipway.errors import ConfigError, NotFoundError, SyncInProgress
from slipway.kube import ObjectRef
from slipway.model import Repository, Workflow
from slipway.results import SyncResult
from slipway.store import StateStore, Store
from slipway.store.kubernetes import KubernetesStore
from slipway.store.kubernetes.names import SECRETS, WORKFLOWS, kname, sync_name
from slipway.store.sqlite.claims import _HOST
from tests.kubestore import BACKENDS, decoded_secrets, everything_in, open_backend


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    return open_backend(request.param, request, tmp_path)


def reopen(store: StateStore, tmp_path: Path) -> StateStore:
    """The same store as another process would open it."""
    return Store(home=tmp_path) if isinstance(store, Store) else KubernetesStore()


def repo(store: StateStore, rid: str = "r", **extra: object) -> Repository:
    r = Repository.from_config({"id": rid, "url": "https://git.example.com/x.git", **extra})
    store.put_repository(r)
    return r


def test_registering_an_existing_id_updates_it(store: StateStore) -> None:
    repo(store, branch="main")
    repo(store, branch="develop", poll_interval="5m")
    assert [r.branch for r in store.list_repositories()] == ["develop"]
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "name": "one"}))
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "name": "two", "auto_sync": True}))
    (wf,) = store.list_workflows()
    assert wf.name == "two" and wf.auto_sync


def test_ids_that_are_not_object_names_work_too(store: StateStore) -> None:
    repo(store, "Team_Repo")
    store.put_workflow(Workflow.from_config({"id": "Web_App.v2", "repository": "Team_Repo"}))
    assert store.get_workflow("Web_App.v2").repository == "Team_Repo"
    assert [w.id for w in store.list_workflows()] == ["Web_App.v2"]
    with pytest.raises(NotFoundError):
        store.get_workflow("web-app-v2")


def test_a_workflow_needs_its_repository_and_keeps_it_alive(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match="repository 'nope' is not registered"):
        store.put_workflow(Workflow.from_config({"id": "w", "repository": "nope"}))
    assert store.list_workflows() == []
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    with pytest.raises(ConfigError, match="used by workflow"):
        store.delete_repository("r")


def test_another_process_sees_what_was_stored(store: StateStore, tmp_path: Path) -> None:
    repo(store)
    if isinstance(store, Store):
        code = f"from pathlib import Path; from slipway.store import Store; print(Store(home=Path({str(tmp_path)!r}))"
    else:
        code = "from slipway.store.kubernetes import KubernetesStore; print(KubernetesStore()"
    out = subprocess.run(
        [sys.executable, "-c", code + ".get_repository('r').url)"], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "https://git.example.com/x.git"


def test_credentials_are_encrypted_at_rest(store: StateStore, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    repo(store, credentials={"type": "userpass", "username": "deploy", "password": "pw-very-secret-1"})
    assert store.get_repository("r").credentials.password == "pw-very-secret-1"  # type: ignore[union-attr]
    assert store.list_repositories()[0].credentials.password == "pw-very-secret-1"  # type: ignore[union-attr]
    if isinstance(store, Store):
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")).decode("latin-1")
        assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    else:
        kubeconfig = request.getfixturevalue("cluster").kubeconfig
        raw = everything_in(kubeconfig, store.namespace) + decoded_secrets(kubeconfig, store.namespace)
        assert "git.example.com/x.git" in raw  # the search does see the objects
    assert "pw-very-secret-1" not in raw and "deploy" not in raw


def test_credentials_change_and_go(store: StateStore) -> None:
    repo(store, credentials={"type": "token", "token": "tok-1234567"})
    version = store.config_version()
    repo(store, credentials={"type": "token", "token": "tok-7654321"})
    assert store.get_repository("r").credentials.token == "tok-7654321"  # type: ignore[union-attr]
    assert store.config_version() != version
    repo(store)
    assert store.get_repository("r").credentials is None


def _result(sync_id: str) -> SyncResult:
    return SyncResult(sync_id, "w", "running", "2026-01-01T00:00:00Z", None, "")


def _dead_owner() -> str:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return f"{_HOST}:{dead.pid}:12345"


def _leave_claim(store: StateStore, owner: str, sync_id: str) -> None:
    """What a process that died in the middle of a sync leaves behind, written as it would be."""
    if isinstance(store, Store):
        with store.tx() as c:
            c.execute("UPDATE workflows SET sync_owner = ?, sync_id = ? WHERE id = 'w'", (owner, sync_id))
            c.execute("UPDATE syncs SET owner = ? WHERE id = ?", (owner, sync_id))
        return
    assert isinstance(store, KubernetesStore)
    claim = {"syncId": sync_id, "owner": owner, "identity": _HOST}
    store.kube.patch_merge(WORKFLOWS, store.namespace, "w", {"status": {"claim": claim}}, subresource="status")
    store.kube.patch_merge(
        SECRETS, store.namespace, sync_name(sync_id), {"metadata": {"annotations": {"slipway.dev/owner": owner}}}
    )


def test_one_claim_per_workflow_and_recovery_when_its_process_died(store: StateStore, tmp_path: Path) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    store.claim("w", "sync-1")
    store.start_sync(_result("sync-1"))
    with pytest.raises(SyncInProgress, match="sync in progress"):
        store.claim("w", "sync-2")
    store.release("w", "sync-1")
    store.claim("w", "sync-2")
    store.release("w", "sync-2")

    _leave_claim(store, _dead_owner(), "sync-1")
    reopened = reopen(store, tmp_path)
    assert reopened.get_sync("sync-1").status == "interrupted"
    assert "interrupted" in reopened.get_sync("sync-1").message
    state = reopened.workflow_state("w")
    assert state["sync_owner"] is None and state["status"] == "failed"
    reopened.claim("w", "sync-3")


def test_a_dead_claim_is_taken_over_by_the_next_claim(store: StateStore) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    store.claim("w", "sync-1")
    store.start_sync(_result("sync-1"))
    _leave_claim(store, _dead_owner(), "sync-1")
    store.claim("w", "sync-2")  # no reopening: the claim itself finds the holder gone
    assert store.get_sync("sync-1").status == "interrupted"
    assert store.workflow_state("w")["sync_id"] == "sync-2"


def test_inventory_and_sync_objects_round_trip(store: StateStore) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    ref = ObjectRef("apps", "Deployment", "ns", "web")
    store.add_inventory("w", {ref: "apps/v1"})
    assert store.inventory("w") == {ref: "apps/v1"}
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    store.start_sync(_result("sync-9"))
    store.put_sync_objects("sync-9", "backup", [(ref, "apps/v1", "update", obj)])
    store.put_sync_objects("sync-9", "desired", [(ref, "apps/v1", "update", obj)])
    assert store.sync_objects("sync-9", "backup") == [(ref, "apps/v1", "update", obj)]
    assert store.sync_objects("sync-9", "desired") == [(ref, "apps/v1", "update", obj)]


def test_a_thousand_objects_and_thousands_of_refs_outgrow_one_object(store: StateStore) -> None:
    """Past what one Kubernetes object holds (~1 MiB): inventories and backups are split and read back whole."""
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    refs = {ObjectRef("", "ConfigMap", f"ns-{i % 7}", f"cm-{i:05d}-" + "x" * 150): "v1" for i in range(8000)}
    store.add_inventory("w", refs)
    assert store.inventory("w") == refs
    fewer = dict(list(refs.items())[:10])
    store.start_sync(_result("sync-big"))
    # Random text does not compress: 1,500 objects of 1 KiB each make a sealed blob of about 2 MiB.
    import secrets as rnd

    objects = [(ref, "v1", "update", {"data": {"v": rnd.token_hex(512)}}) for ref in list(refs)[:1500]]
    store.put_sync_objects("sync-big", "backup", objects)
    assert sorted(store.sync_objects("sync-big", "backup"), key=lambda o: o[0]) == sorted(objects, key=lambda o: o[0])
    result = _result("sync-big")
    result.status, result.end_time = "succeeded", "2026-01-01T00:00:05Z"
    store.finish_sync(result, workflow_status="synced", status_message="ok", inventory=fewer)
    assert store.inventory("w") == fewer
    assert store.get_sync("sync-big").status == "succeeded"


def test_history_is_bounded_newest_first_and_outlives_its_workflow(store: StateStore) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "history_limit": 3}))
    for i in range(1, 6):
        result = _result(f"sync-{i}")
        store.start_sync(result)
        result.status, result.commit_hash = "succeeded", f"c{i}"
        store.finish_sync(result, workflow_status="synced", status_message=f"sync {i}", applied_revision=f"c{i}",
                          history_limit=3)  # fmt: skip
    assert [h.id for h in store.history("w")] == ["sync-5", "sync-4", "sync-3"]
    assert [h.id for h in store.history("w", limit=1)] == ["sync-5"]
    with pytest.raises(NotFoundError):
        store.get_sync("sync-1")
    store.remove_workflow("w")
    assert store.history("w") == []
    assert [h.id for h in store.history("w", removed=True)] == ["sync-5", "sync-4", "sync-3"]
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    assert store.history("w") == [] and store.inventory("w") == {}  # a new workflow of that id starts afresh


def test_config_version_moves_with_configuration_not_with_syncs(store: StateStore) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    version = store.config_version()
    store.claim("w", "sync-1")
    store.start_sync(_result("sync-1"))
    store.set_workflow_state("w", status="degraded", status_message="x")
    store.release("w", "sync-1")
    assert store.config_version() == version
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "auto_sync": True}))
    assert store.config_version() != version


def test_executions_are_kept_newest_first(store: StateStore) -> None:
    for i in range(3):
        store.record_execution("deploy", f"cmd {i}", i != 1, float(i), f"run {i}", {"i": i})
    rows = store.executions("deploy")
    assert [r["command"] for r in rows] == ["cmd 2", "cmd 1", "cmd 0"]
    assert [bool(r["success"]) for r in rows] == [True, False, True]
    assert store.executions("deploy", limit=1)[0]["message"] == "run 2"
    assert store.executions("other") == []


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    store = Store(home=tmp_path)
    repo(store)
    with pytest.raises(RuntimeError), store.tx() as c:
        c.execute("UPDATE repositories SET branch = 'changed'")
        raise RuntimeError("boom")
    assert store.get_repository("r").branch == "main"


def test_sqlite_keeps_each_object_once(tmp_path: Path) -> None:
    store = Store(home=tmp_path)
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    ref = ObjectRef("apps", "Deployment", "ns", "web")
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    store.start_sync(_result("sync-9"))
    store.put_sync_objects("sync-9", "backup", [(ref, "apps/v1", "update", obj)])
    store.put_sync_objects("sync-9", "desired", [(ref, "apps/v1", "update", obj)])  # same content: one blob
    assert store._conn().execute("SELECT COUNT(*) FROM blobs").fetchone()[0] == 1


def test_workflow_names_are_fixed_per_id() -> None:
    assert kname("web") == "web"
    assert kname("Web_App") == kname("Web_App") != kname("web_app")
    assert len(kname("A" * 63)) <= 63


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
