"""The resource tree in Chromium: owned objects with what controllers made from them, and an action
run from its button through the confirm dialog; what a viewer sees; the API's refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.manifests import configmap, deployment, dump
from tests.server.test_events_metrics import metrics, value

from .conftest import add_workflow, screenshot, wait_until

pytestmark = pytest.mark.cluster

NO_SIDEWAYS = "() => [document.documentElement.scrollWidth, window.innerWidth]"


def metrics_value(server: Any, name: str, **labels: str) -> float | None:
    return value(metrics(server), name, **labels)


def _synced(server: Any, wf: str) -> None:
    operator = server.client("operator")
    r = operator.post(f"/api/v1/workflows/{wf}/sync", json={})
    assert r.status_code == 202, r.text
    wait_until(lambda: operator.get(f"/api/v1/workflows/{wf}").json()["status"] == "synced", 120, 0.5)


def test_the_tree_and_a_restart_from_its_button(start_server, browser, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    files = {"k8s/app.yaml": dump(deployment("web", 2), configmap("settings"))}
    add_workflow(server, tmp_path, "shop", namespace, files)
    _synced(server, "shop")

    ui = browser(server, width=390, height=844)
    page = ui.login("operator", "/workflows/shop/tree")
    page.wait_for_selector("body[data-loaded=yes]")
    web = page.locator("#tree > li[data-kind=Deployment]")
    assert "Healthy" in web.locator(".node-line").first.inner_text()
    replica_sets = web.locator("li[data-kind=ReplicaSet]")
    assert replica_sets.count() == 1
    pods = replica_sets.first.locator("li[data-kind=Pod]")
    assert pods.count() == 2
    assert "app: running" in pods.first.inner_text() and "0 restarts" in pods.first.inner_text()
    web.locator("details.events summary").first.click()
    assert "ScalingReplicaSet" in web.locator("details.events").first.inner_text()
    width, inner = page.evaluate(NO_SIDEWAYS)
    assert width <= inner, (width, inner)
    screenshot(page, "tree-phone", tmp_path, docs=True)

    # Restart: the button asks first; Cancel does nothing, Confirm rolls the Deployment.
    web.get_by_role("button", name="restart").click()
    dialog = page.locator("#action-dialog")
    assert "Run restart on Deployment/web" in dialog.inner_text()
    page.get_by_role("button", name="Cancel").click()
    assert not dialog.is_visible()
    web.get_by_role("button", name="restart").click()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#action-result .done.good")
    assert "succeeded: restart Deployment/web" in page.inner_text("#action-result")

    def rolled() -> bool:
        page.goto(f"{server.url}/workflows/shop/tree")
        sets = page.locator("#tree > li[data-kind=Deployment] li[data-kind=ReplicaSet]")
        return sets.count() == 2

    wait_until(rolled, 60, 1.0)
    # Scale asks for its parameter, filled with the current value.
    page.locator("#tree > li[data-kind=Deployment]").get_by_role("button", name="scale").click()
    assert page.get_by_label("replicas").input_value() == "2"
    page.get_by_label("replicas").fill("3")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#action-result .done.good")

    ui_wide = browser(server)
    wide = ui_wide.login("operator", "/workflows/shop/tree")
    wide.wait_for_selector("body[data-loaded=yes]")
    screenshot(wide, "tree", tmp_path, docs=True)

    # An operator's session cookie alone, without the page's CSRF token, runs nothing.
    cookie = ui.session_cookie()
    plain = server.client(cookies={cookie["name"]: cookie["value"]}, headers={"Origin": server.url})
    refused = plain.post("/api/v1/workflows/shop/actions", json={"resource": "Deployment/web", "action": "restart"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    history = server.client("viewer").get("/api/v1/workflows/shop/history").json()
    actions = [h for h in history if h["kind"] == "action"]
    assert [h["message"].split()[0] for h in actions] == ["scale", "restart"]
    assert all(h["actor"].startswith("token:operator-") for h in actions)
    assert ui.blocked == [] and ui.errors == [] and ui_wide.errors == []


def test_a_viewer_sees_the_tree_without_buttons_and_the_api_refuses(
    start_server, browser, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    add_workflow(server, tmp_path, "shop", namespace, {"k8s/app.yaml": dump(deployment("web", 1))})
    _synced(server, "shop")
    ui = browser(server)
    page = ui.login("viewer", "/workflows/shop/tree")
    page.wait_for_selector("#tree > li[data-kind=Deployment]")
    assert page.locator("button[data-action]").count() == 0
    assert page.locator("#action-dialog").count() == 0

    body = {"resource": "Deployment/web", "action": "restart"}
    assert server.client("viewer").post("/api/v1/workflows/shop/actions", json=body).status_code == 403
    assert (
        server.client("viewer").get("/api/v1/workflows/shop/actions", params={"resource": "Deployment/web"}).status_code
        == 403
    )
    operator = server.client("operator")
    listed = operator.get("/api/v1/workflows/shop/actions", params={"resource": "Deployment/web"})
    assert listed.status_code == 200 and "restart" in [a["name"] for a in listed.json()["actions"]]
    foreign = operator.post(
        "/api/v1/workflows/shop/actions", json={"resource": "Deployment/elsewhere", "action": "restart"}
    )
    assert foreign.status_code == 403 and "does not own Deployment/elsewhere" in foreign.json()["error"]
    bad = operator.post("/api/v1/workflows/shop/actions", json={**body, "params": {"x": ["y"]}})
    assert bad.status_code == 400
    unknown = operator.post("/api/v1/workflows/shop/actions", json={**body, "action": "explode"})
    assert unknown.status_code == 400 and "no action 'explode'" in unknown.json()["error"]
    # An action is no sync: the workflow's health in /metrics is still its last sync's.
    assert operator.post("/api/v1/workflows/shop/actions", json=body).json()["status"] == "succeeded"
    assert metrics_value(server, "slipway_workflow_health", workflow="shop", health="Healthy") == 1
    tree = server.client("viewer").get("/api/v1/workflows/shop/tree").json()["tree"]
    assert tree[0]["kind"] == "Deployment" and tree[0]["children"][0]["kind"] == "ReplicaSet"
    assert ui.errors == []
