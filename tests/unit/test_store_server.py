"""What the server asks of a state store, for both backends: API tokens (a salted hash, never the
token), who asked for each sync, failures recorded before a sync starts, notification URLs kept sealed.

Like tests/unit/test_store.py, each test runs against SQLite and against the kubernetes store (on
the local control plane, in a namespace of its own).
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest

from slipway.engine import Engine
from slipway.errors import ConfigError, SourceError
from slipway.kube import Kube
from slipway.model import Workflow
from slipway.source import GitSource
from slipway.store import StateStore, Store
from slipway.store.kubernetes import KubernetesStore
from slipway.store.kubernetes.names import SECRETS, WORKFLOWS, notify_name
from tests.kubestore import BACKENDS, decoded_secrets, everything_in, open_backend
from tests.unit.test_store import _result, reopen, repo


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    return open_backend(request.param, request, tmp_path)


def engine_on(store: StateStore, tmp_path: Path) -> Engine:
    return Engine(store, GitSource(cache_dir=tmp_path / "git", home=tmp_path))


def everything(store: StateStore, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """All a reader of the store's storage sees: the SQLite files, or every object in its namespace."""
    if isinstance(store, Store):
        return b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")).decode("latin-1")
    assert isinstance(store, KubernetesStore)
    kubeconfig = request.getfixturevalue("cluster").kubeconfig
    return everything_in(kubeconfig, store.namespace) + decoded_secrets(kubeconfig, store.namespace)


def _row(token_id: str, name: str, created_at: float) -> dict[str, object]:
    return {"id": token_id, "name": name, "role": "viewer", "salt": bytes(range(16)), "hash": bytes(range(32, 64)),
            "created_at": created_at, "created_by": "user:alice", "last_used_at": None}  # fmt: skip


def test_token_rows_round_trip_and_a_name_is_taken_once(store: StateStore, tmp_path: Path) -> None:
    store.put_token(_row("0123456789ab", "ci", 2.0))
    store.put_token(_row("ba9876543210", "alpha", 1.0))
    row = store.get_token("0123456789ab")
    assert row == _row("0123456789ab", "ci", 2.0)
    assert isinstance(row["salt"], bytes) and isinstance(row["hash"], bytes)
    assert store.get_token("000000000000") is None
    assert [t["name"] for t in store.list_tokens()] == ["alpha", "ci"]  # by when they were made
    with pytest.raises(ConfigError, match="token 'ci' already exists"):
        store.put_token(_row("111111111111", "ci", 3.0))
    store.touch_token("0123456789ab", 1234.5)
    assert store.get_token("0123456789ab")["last_used_at"] == 1234.5  # type: ignore[index]
    other = reopen(store, tmp_path)  # another process, the same store
    assert other.delete_token("ci") and not other.delete_token("ci")
    assert store.get_token("0123456789ab") is None and [t["name"] for t in store.list_tokens()] == ["alpha"]
    store.touch_token("0123456789ab", 1300.0)  # revoked meanwhile: nothing to do
    store.put_token(_row("111111111111", "ci", 3.0))  # the name is free again
    assert store.get_token("111111111111") is not None


def test_tokens_check_by_hash_and_never_rest_in_clear(
    store: StateStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    eng = engine_on(store, tmp_path)
    token, secret = eng.create_token("deployer", "operator", created_by="user:alice")
    who = eng.authenticate(secret)
    assert who is not None and (who.name, who.role, who.created_by) == ("deployer", "operator", "user:alice")
    assert store.get_token(token.id)["last_used_at"] is not None  # type: ignore[index]
    assert eng.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    seen = everything(store, tmp_path, request)
    assert "deployer" in seen  # the search does see the token's row
    for text in (secret, secret.split("_", 2)[2]):
        assert text not in seen and base64.b64encode(text.encode()).decode() not in seen
    engine_on(reopen(store, tmp_path), tmp_path).revoke_token("deployer")
    assert eng.authenticate(secret) is None  # revoked by another process: refused at once


def test_a_record_keeps_who_asked_for_it(store: StateStore) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    result = _result("sync-1")
    result.actor = "token:ci"
    store.claim("w", "sync-1")
    store.start_sync(result)
    result.status, result.end_time = "succeeded", "2026-01-01T00:00:05Z"
    store.finish_sync(result, workflow_status="synced", status_message="ok")
    store.release("w", "sync-1")
    assert store.get_sync("sync-1").actor == "token:ci"
    assert [h.actor for h in store.history("w")] == ["token:ci"]


def test_failures_before_a_sync_starts_are_recorded_within_the_history_limit(store: StateStore, tmp_path: Path) -> None:
    repo(store)
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "history_limit": 2}))
    eng = engine_on(store, tmp_path)
    failed = [eng.record_failure("w", "auto", SourceError(f"git server down ({i})")) for i in range(4)]
    assert [h.id for h in store.history("w")] == [failed[3].id, failed[2].id]
    last = store.history("w")[0]
    assert last.status == "failed" and "git server down (3)" in last.message
    assert eng.status("w")["status"] == "failed"
    assert store.workflow_state("w")["sync_owner"] is None  # nobody claimed it, and nobody holds it now


def test_a_notification_url_is_sealed_and_changes_the_configuration(
    store: StateStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    repo(store)
    url = "https://hooks.example.com/services/T0/B0/hook-secret-4711"
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r", "notify": {"url": url}}))
    wf = store.get_workflow("w")
    assert (
        wf.notify is not None
        and wf.notify.url == url
        and wf.notify.events == ["failed", "refused", "degraded", "rolled_back"]
    )
    assert store.list_workflows()[0].notify == wf.notify
    seen = everything(store, tmp_path, request)
    assert "hook-secret-4711" not in seen and "hooks.example.com" not in seen
    version = store.config_version()
    other = url.replace("4711", "4712")
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r",
                                             "notify": {"url": other, "events": ["succeeded"]}}))  # fmt: skip
    assert store.config_version() != version
    changed = store.get_workflow("w").notify
    assert changed is not None and (changed.url, changed.events) == (other, ["succeeded"])
    store.put_workflow(Workflow.from_config({"id": "w", "repository": "r"}))
    assert store.get_workflow("w").notify is None
    if isinstance(store, KubernetesStore):
        assert store.kube.get(SECRETS, store.namespace, notify_name("w")) is None


@pytest.mark.cluster
def test_a_workflow_applied_with_kubectl_reads_its_url_from_a_plain_secret(kube: Kube, slipway_namespace: str) -> None:
    store = KubernetesStore()
    repo(store)
    ns = slipway_namespace
    url = "https://hooks.example.com/services/by-hand"
    kube.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook", "namespace": ns},
                          "stringData": {"address": url}})  # fmt: skip
    spec = {"repository": "r", "notify": {"urlSecretRef": {"name": "hook", "key": "address"}}}
    kube.create(WORKFLOWS, {"apiVersion": "slipway.dev/v1alpha1", "kind": "Workflow",
                            "metadata": {"name": "by-hand", "namespace": ns}, "spec": spec})  # fmt: skip
    notify = store.get_workflow("by-hand").notify
    assert notify is not None and notify.url == url
    spec["notify"] = {"urlSecretRef": {"name": "missing"}}
    obj = kube.get(WORKFLOWS, ns, "by-hand")
    assert obj is not None
    obj["spec"] = spec
    kube.replace(WORKFLOWS, obj)
    assert store.list_workflows() == []  # told on its status why, never fatal

    def ready() -> dict[str, str]:
        got = kube.get(WORKFLOWS, ns, "by-hand") or {}
        return next((c for c in (got.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})

    assert ready()["status"] == "False" and "Secret missing" in ready()["message"]


@pytest.mark.cluster
def test_two_processes_making_a_token_of_one_name_at_once_make_one(slipway_namespace: str) -> None:
    stores = [KubernetesStore(), KubernetesStore()]
    outcomes: list[str] = []
    start = threading.Barrier(len(stores) * 3)

    def make(store: KubernetesStore, i: int) -> None:
        start.wait()
        try:
            store.put_token(_row(f"{i:012x}", "ci", time.time()))
            outcomes.append(f"{i:012x}")
        except ConfigError:
            outcomes.append("refused")

    threads = [threading.Thread(target=make, args=(stores[i % 2], i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    made = [o for o in outcomes if o != "refused"]
    assert len(outcomes) == 6 and len(made) == 1, outcomes
    assert [t["id"] for t in stores[0].list_tokens()] == made
    assert stores[1].get_token(made[0]) is not None
    # The losers left nothing behind that could still authenticate.
    assert all(stores[0].get_token(o) is None for o in (f"{i:012x}" for i in range(6)) if o not in made)


@pytest.mark.cluster
def test_a_token_name_cut_short_is_free_again_only_after_a_while(slipway_namespace: str) -> None:
    from slipway.store.kubernetes import names, tokens

    store = KubernetesStore()
    kube = Kube()
    store._names()  # the index exists

    def taken(token_id: str, ago: float) -> None:
        body = {"data": {"ci": f"{token_id}@{time.time() - ago:.0f}"}}
        kube.patch_merge(names.CONFIGMAPS, slipway_namespace, names.TOKEN_NAMES_CONFIGMAP, body)

    taken("00000000dead", 1)  # a put_token still writing its Secret
    with pytest.raises(ConfigError, match="already exists"):
        store.put_token(_row("000000000001", "ci", time.time()))
    taken("00000000dead", tokens.CUT_SHORT + 5)  # one that never finished
    store.put_token(_row("000000000002", "ci", time.time()))
    assert [t["id"] for t in store.list_tokens()] == ["000000000002"]
