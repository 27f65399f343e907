"""A person's day with the dashboard: log in, find a workflow, sync it, see a commit's diff, roll back.

One operator in a real Chromium against the real server, cluster and Git; nothing but the
server is reachable from the browser, and the page never navigates while a sync runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.gitservers import commit, push
from tests.manifests import configmap, deployment, dump

from .conftest import add_workflow, screenshot, wait_until

pytestmark = pytest.mark.cluster


def test_login_find_sync_diff_and_roll_back(
    start_server, browser, git_http_server, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    app = {"k8s/app.yaml": dump(configmap("web-config", {"greeting": "hello"}), deployment("web", 2))}
    wf, other = "web", "billing"
    work = add_workflow(server, tmp_path, wf, namespace, app, git_http_server, name="Web shop")
    add_workflow(server, tmp_path, other, namespace, {"k8s/app.yaml": dump(configmap("other"))}, git_http_server)
    ui = browser(server)
    page = ui.login("operator")

    # The overview: both workflows, counts at the top, the repositories with their last fetch.
    page.wait_for_selector("body[data-loaded=yes]")
    rows = page.locator("#workflows tbody tr")
    assert rows.count() == 2
    # Never synced: Unknown until the controller first computed them, then OutOfSync (nothing applied yet).
    counts = page.inner_text("#counts")
    assert "2 workflows" in counts and ("2 Unknown" in counts or "2 OutOfSync" in counts), counts
    repos = page.locator("#repositories tbody tr")
    assert repos.count() == 2
    # Asked of Git when the page read it (a slow Git server answers a moment later): no error.
    wait_until(lambda: "just now" in repos.first.inner_text() and "none" in repos.first.inner_text(), 40)
    screenshot(page, "overview-unsynced", tmp_path)

    # Filter by text, then by repository, then by sync status: each a URL to share.
    page.get_by_label("Search").fill("shop")
    page.get_by_label("Search").press("Enter")
    page.wait_for_url("**q=shop**")
    page.wait_for_selector("body[data-loaded=yes]")
    assert rows.count() == 1 and "Web shop" in rows.first.inner_text()
    page.goto(server.url + "/")
    page.get_by_label("Repository").select_option(f"repo-{other}")
    page.wait_for_url(f"**repository=repo-{other}**")
    page.wait_for_selector("body[data-loaded=yes]")
    assert rows.count() == 1 and other in rows.first.inner_text()
    page.get_by_label("Sync", exact=True).select_option("Synced")
    page.wait_for_url("**sync=Synced**")
    page.wait_for_selector("body[data-loaded=yes]")
    assert "No workflow matches" in rows.first.inner_text()
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-loaded=yes]")

    # The workflow's page: its objects grouped by kind, the pending diff, the waves.
    page.get_by_role("link", name="Web shop").click()
    page.wait_for_url(f"{server.url}/workflows/{wf}")
    page.wait_for_selector("#objects .object")
    assert page.locator("#objects h3").all_inner_texts() == ["ConfigMap (1)", "Deployment (1)"]
    page.wait_for_selector("#diff .changes")
    assert "2 to create" in page.inner_text("#diff")
    assert page.locator("#diff .change").count() == 2
    assert "Wave 0" in page.inner_text("#waves")

    # Sync: the dialog shows the plan, Confirm applies exactly that; the page follows the events.
    page.evaluate("window.__stayed = true")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    page.get_by_role("button", name="Sync", exact=True).click()
    dialog = page.locator("#sync-dialog")
    page.wait_for_selector("#sync-confirm:not([disabled])")
    assert "+ create ConfigMap/web-config" in dialog.inner_text() and "Deployment/web" in dialog.inner_text()
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#progress .done.good", timeout=90_000)
    assert "Sync succeeded" in page.inner_text("#progress")
    page.wait_for_selector("#wf-badges .badge.good:text('Synced')")
    page.wait_for_selector("#diff .in-sync")
    page.wait_for_selector("#history tbody tr")
    assert page.evaluate("window.__stayed") is True and navigations == []
    history = page.locator("#history tbody tr")
    assert history.count() == 1 and "token:operator-" in history.first.inner_text()

    # A commit: Refresh shows the pending diff, coloured, with its impact and wave.
    commit(work, {"k8s/app.yaml": dump(configmap("web-config", {"greeting": "hello, world"}), deployment("web", 3))},
           message="scale out and greet the world")  # fmt: skip
    push(work)
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_selector("#diff .change.update")
    changed = page.locator("#diff .change")
    assert changed.count() == 2
    assert page.locator("#diff .line.add").count() >= 2 and page.locator("#diff .line.del").count() >= 2
    assert "impact" in changed.first.inner_text() and "wave 0" in changed.first.inner_text()
    wait_until(lambda: "behind Git" in page.inner_text("#summary"), 20)
    screenshot(page, "workflow-pending-diff", tmp_path, docs=True)

    # Sync that commit, then roll back with a reason (required), and read it in the history.
    page.get_by_role("button", name="Sync", exact=True).click()
    page.wait_for_selector("#sync-confirm:not([disabled])")
    page.get_by_role("button", name="Confirm").click()
    wait_until(lambda: page.locator("#history tbody tr").count() == 2, 90, step=0.2)
    page.wait_for_selector("#btn-rollback:not([disabled])")
    page.get_by_role("button", name="Rollback").click()
    page.locator("#rb-confirm").click()
    assert "reason is required" in page.inner_text("#rb-error")
    assert page.get_by_label("Reason").get_attribute("aria-invalid") == "true"
    page.get_by_label("Reason").fill("the new greeting is premature")
    page.locator("#rb-confirm").click()
    wait_until(lambda: page.locator("#history tbody tr").count() == 3, 90, step=0.2)
    newest = page.locator("#history tbody tr").first
    assert "rollback" in newest.inner_text() and "Reason: the new greeting is premature" in newest.inner_text()
    page.wait_for_selector("#progress .done.good")
    assert "Rollback succeeded" in page.inner_text("#progress")
    assert page.evaluate("window.__stayed") is True and navigations == []
    screenshot(page, "workflow-history", tmp_path, docs=True, element="section:has(#history)")

    # Back on the overview: synced, and the last sync (the rollback) with its outcome and duration.
    page.get_by_role("link", name="Workflows").first.click()
    page.wait_for_selector("body[data-loaded=yes]")
    row = page.locator(f"#workflows tr[data-workflow='{wf}']")
    wait_until(lambda: "Succeeded" in row.inner_text() and "rollback" in row.inner_text(), 20)
    assert "Healthy" in row.inner_text() and "held by a rollback" in row.inner_text()
    screenshot(page, "overview", tmp_path, docs=True)

    # Nothing but the server was asked for anything, and nothing failed in the page.
    assert ui.blocked == [] and ui.errors == []


def test_the_token_never_reaches_the_page(start_server, browser) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    ui = browser(server)
    page = ui.login("operator")
    page.wait_for_selector("body[data-loaded=yes]")
    token = server.tokens["operator"]
    seen = page.evaluate(
        "() => [document.cookie, JSON.stringify(Object.entries(localStorage)),"
        " JSON.stringify(Object.entries(sessionStorage)), document.documentElement.outerHTML, location.href]"
    )
    assert all(token not in text for text in seen)
    assert "slipway_session" not in seen[0]  # HttpOnly: scripts do not see the cookie at all
    cookie = ui.session_cookie()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert token not in cookie["value"] and cookie["expires"] > time.time()
    assert token not in server.log_text()
    # The log says who logged in, by the token's name.
    assert "logged in to the dashboard (operator)" in server.log_text()
