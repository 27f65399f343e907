"""``POST /api/v1/workflows/{id}/unlock`` on ``server --no-controller`` with the kubernetes store, as
``deploy/`` runs it: a claim nobody can judge is refused to every sync (409) until an admin unlocks
it; viewers and operators are refused (403); the dead sync's record ends ``interrupted``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slipway.store.kubernetes import KubernetesStore
from tests.e2e.test_claims import foreign_claim
from tests.manifests import configmap, dump

from .test_api import finish, setup_workflow

pytestmark = pytest.mark.cluster


def test_unlock_is_for_admins_and_frees_the_workflow(  # type: ignore[no-untyped-def]
    start_server, tmp_path: Path, namespace: str, slipway_namespace: str, cluster: Any
) -> None:
    env = {"SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": slipway_namespace}
    server = start_server("--no-controller", env=env)
    wf, _ = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    store = server.engine().store
    assert isinstance(store, KubernetesStore)
    dead = foreign_claim(store, None, workflow_id=wf)  # another machine's claim with no liveness

    operator, admin = server.client("operator"), server.client("admin")
    r = operator.post(f"/api/v1/workflows/{wf}/sync")
    assert r.status_code == 409 and "sync in progress" in r.text, r.text
    for role in ("viewer", "operator"):
        r = server.client(role).post(f"/api/v1/workflows/{wf}/unlock")
        assert r.status_code == 403, (role, r.text)
    assert store.workflow_state(wf)["sync_id"] == dead

    r = admin.post(f"/api/v1/workflows/{wf}/unlock")
    assert r.status_code == 200, r.text
    assert r.json() == {"workflow": wf, "unlocked": True, "sync_id": dead, "holder": "pid 4242 of far-replica"}
    history = {h["id"]: h for h in operator.get(f"/api/v1/workflows/{wf}/history").json()}
    assert history[dead]["status"] == "interrupted" and history[dead]["end_time"], history[dead]
    r = admin.post(f"/api/v1/workflows/{wf}/unlock")
    assert r.json() == {"workflow": wf, "unlocked": False, "sync_id": None, "holder": None}
    r = admin.post("/api/v1/workflows/nope/unlock")
    assert r.status_code == 404, r.text

    r = operator.post(f"/api/v1/workflows/{wf}/sync")
    assert r.status_code == 202, r.text
    assert finish(server, r.json()["id"])["status"] == "succeeded"
    assert "unlocked workflow" in server.log_text()
