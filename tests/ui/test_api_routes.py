"""The API routes the dashboard added, over plain HTTP with bearer tokens as any client uses them:
branch heads and fetch errors, workflows with their live state, objects as YAML, auto-sync."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from tests.gitservers import commit, push
from tests.manifests import configmap, dump
from tests.server.test_api import finish

from .conftest import add_workflow, wait_until

pytestmark = pytest.mark.cluster

SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "creds"},
    "stringData": {"password": "s3cr3t-value"},
}


def test_sources_live_state_manifests_and_auto_sync(start_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    work = add_workflow(server, tmp_path, "web", namespace, {"k8s/app.yaml": dump(configmap("app"), SECRET)})
    admin = server.client("admin")
    admin.post("/api/v1/repositories", json={"id": "gone", "url": str(tmp_path / "no-such-repo.git")})
    viewer, operator = server.client("viewer"), server.client("operator")

    # Branch heads, asked of Git on the first read; an unreachable repository says why.
    sources = {s["repository"]: s for s in viewer.get("/api/v1/sources").json()}
    head = sources["repo-web"]["head"]["revision"]
    assert len(head) == 40 and sources["repo-web"]["last_error"] is None and sources["repo-web"]["checking"] is False
    assert sources["repo-web"]["last_fetch"]["how"] == "check"
    assert sources["gone"]["head"] is None and sources["gone"]["last_error"]["operation"] == "check"
    assert "no-such-repo" in sources["gone"]["last_error"]["message"]

    # Workflows with ?live=true: the live revision, and sync status and health as last computed.
    [before] = viewer.get("/api/v1/workflows?live=true").json()
    assert before["live_state"]["applied_revision"] is None and before["health"]["status"] == "Unknown"
    assert "live_state" not in viewer.get("/api/v1/workflows").json()[0]  # the seed's table, unless asked
    assert finish(server, operator.post("/api/v1/workflows/web/sync").json()["id"])["status"] == "succeeded"
    [after] = viewer.get("/api/v1/workflows?live=true").json()
    assert after["live_state"]["applied_revision"] == head and after["health"]["status"] == "Healthy"
    assert after["sync_status"]["status"] == "Synced" and after["operation"]["phase"] == "Succeeded"

    # A new commit: the sync fetched it; ?refresh=true asks Git at once.
    sha = commit(work, {"k8s/app.yaml": dump(configmap("app", {"k": "v2"}), SECRET)})
    push(work)
    fresh = {s["repository"]: s for s in viewer.get("/api/v1/sources?refresh=true").json()}
    assert fresh["repo-web"]["head"]["revision"] == sha
    assert finish(server, operator.post("/api/v1/workflows/web/sync").json()["id"])["status"] == "succeeded"
    last = {s["repository"]: s for s in viewer.get("/api/v1/sources").json()}["repo-web"]["last_fetch"]
    assert last["revision"] == sha and last["how"] == "fetch"

    # Objects as YAML: live (with status) and desired (what Git declares), Secret values masked;
    # an operator plans, a viewer reads what was computed.
    planned = operator.get("/api/v1/workflows/web/resources?manifests=true").json()["resources"]
    rows = {r["resource"]: r for r in viewer.get("/api/v1/workflows/web/resources?manifests=true").json()["resources"]}
    assert list(rows.values()) == planned
    live, desired = yaml.safe_load(rows["ConfigMap/app"]["live"]), yaml.safe_load(rows["ConfigMap/app"]["desired"])
    assert live["data"] == {"k": "v2"} and desired["data"] == {"k": "v2"} and "managedFields" not in live["metadata"]
    text = rows["Secret/creds"]["live"] + rows["Secret/creds"]["desired"]
    assert "s3cr3t-value" not in text and base64.b64encode(b"s3cr3t-value").decode() not in text
    assert yaml.safe_load(rows["Secret/creds"]["live"])["data"] == {"password": "********"}
    assert "live" not in viewer.get("/api/v1/workflows/web/resources").json()["resources"][0]

    # Auto-sync: an operator turns it on and off; bad input changes nothing; a viewer may not.
    r = operator.post("/api/v1/workflows/web/auto-sync", json={"enabled": True})
    assert r.status_code == 200 and r.json() == {"id": "web", "auto_sync": True, "changed": True}
    assert server.engine().workflow("web").auto_sync is True
    for body in ({}, {"enabled": "yes"}, {"enabled": False, "extra": 1}):
        r = operator.post("/api/v1/workflows/web/auto-sync", json=body)
        assert r.status_code == 400, (body, r.text)
    assert viewer.post("/api/v1/workflows/web/auto-sync", json={"enabled": False}).status_code == 403
    assert server.engine().workflow("web").auto_sync is True
    assert operator.post("/api/v1/workflows/web/auto-sync", json={"enabled": False}).json()["changed"] is True
    wait_until(lambda: "turned auto-sync of workflow web off" in server.log_text(), 5)
