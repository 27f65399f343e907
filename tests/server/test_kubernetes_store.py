"""``slipway server`` with SLIPWAY_STORE=kubernetes: tokens made, checked and revoked through the API
with the cluster as the store, a sync recorded with who asked for it, and the server's controller
running as a replica on shard Leases, auto-syncing a commit."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from slipway.kube import Kube
from slipway.shards import lease_name
from slipway.store.kubernetes.names import kname
from tests.gitservers import commit, push
from tests.kubestore import decoded_secrets, everything_in, kubectl
from tests.manifests import configmap, dump

from .conftest import wait_until
from .test_api import finish, setup_workflow

pytestmark = pytest.mark.cluster


def test_tokens_syncs_and_the_controller_on_the_kubernetes_store(  # type: ignore[no-untyped-def]
    start_server, tmp_path: Path, namespace: str, slipway_namespace: str, cluster: Any, kube: Kube
) -> None:
    env = {"SLIPWAY_STORE": "kubernetes", "SLIPWAY_NAMESPACE": slipway_namespace}
    server = start_server("--shards", "2", "--identity", "server-a", env=env)
    admin, viewer = server.client("admin"), server.client("viewer")

    # a token made through the API lands in the cluster store, hashed
    r = admin.post("/api/v1/tokens", json={"name": "deployer", "role": "operator"})
    assert r.status_code == 201, r.text
    secret = server.tokens["deployer"] = r.json()["token"]
    deployer = server.client("deployer")
    assert deployer.get("/api/v1/whoami").json()["name"] == "deployer"

    # a sync through the API, recorded in the cluster with its actor
    wf, work = setup_workflow(server, tmp_path, namespace, {"k8s/app.yaml": dump(configmap("app", {"v": "1"}))})
    r = deployer.post(f"/api/v1/workflows/{wf}/sync")
    assert r.status_code == 202, r.text
    done = finish(server, r.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["actor"] == "token:deployer"
    assert [h["actor"] for h in viewer.get(f"/api/v1/workflows/{wf}/history").json()] == ["token:deployer"]
    assert server.engine().store.history(wf)[0].actor == "token:deployer"  # another process reads the cluster
    status = kubectl(cluster.kubeconfig, "-n", slipway_namespace, "get", "workflow", kname(wf), "-o", "json")
    assert json.loads(status)["status"]["status"] == "synced"

    # the server's controller is a replica: it holds both shards, and auto-syncs a commit
    leases = kube.discovery.lookup("coordination.k8s.io/v1", "Lease")

    def holders() -> set[str]:
        objs = [kube.get(leases, slipway_namespace, lease_name(i)) for i in range(2)]
        return {str((o or {}).get("spec", {}).get("holderIdentity")) for o in objs}

    wait_until(lambda: holders() == {"server-a"}, 30, step=0.2)
    commit(work, {"k8s/app.yaml": dump(configmap("app", {"v": "2"}))})
    push(work)
    r = deployer.post(f"/api/v1/workflows/{wf}/auto-sync", json={"enabled": True})
    assert r.status_code == 200 and r.json()["changed"], r.text
    cms = kube.discovery.lookup("v1", "ConfigMap")
    wait_until(lambda: ((kube.get(cms, namespace, "app") or {}).get("data") or {}).get("v") == "2", 90, step=0.5)
    history = wait_until(
        lambda: (h := viewer.get(f"/api/v1/workflows/{wf}/history").json())[0]["status"] == "succeeded" and h, 60
    )
    assert [h["actor"] for h in history] == [None, "token:deployer"]  # the controller asks as nobody

    # listed with its last use, never its secret; revoked, refused at once
    listed = {t["name"]: t for t in admin.get("/api/v1/tokens").json()}
    assert listed["deployer"]["role"] == "operator" and listed["deployer"]["last_used_at"] is not None
    assert admin.delete("/api/v1/tokens/deployer").status_code == 200
    assert deployer.get("/api/v1/whoami").status_code == 401
    seen = everything_in(cluster.kubeconfig, slipway_namespace) + decoded_secrets(cluster.kubeconfig, slipway_namespace)
    assert "slipway-token-" in seen  # the search does see the other tokens' objects
    for text in (secret, secret.split("_", 2)[2]):
        assert text not in seen and base64.b64encode(text.encode()).decode() not in seen
        assert text not in server.log_text()
