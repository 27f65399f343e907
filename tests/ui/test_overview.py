"""The dashboard for a hundred workflows: filters by sync status, health, namespace, cluster and label
(in the URL, and the same filters on the API's list), the path and namespace on the overview, and a
history whose rows carry the commit's subject and author, the hooks that ran and a link to the diff
of that sync. Hostile input first: a commit message and author that are HTML, filter values in the
URL that are HTML, a commit message that quotes a Secret's value."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.gitservers import git, push
from tests.manifests import configmap, dump

from .conftest import add_workflow, screenshot, wait_until

pytestmark = pytest.mark.cluster

XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2">'
SECRET_VALUE = "pa55-w0rd-never-shown"
# Git keeps no < > in a name: the author carries quotes and an entity instead.
AUTHOR = 'Mallory" onmouseover="window.__xss = 3" &amp; co'

INJECTED = "() => [window.__xss, document.querySelectorAll('script:not([src]), img[src=\"x\"], [onerror]').length]"


def hostile_commit(work: Path, files: dict[str, str], subject: str, author: str) -> str:
    for rel, text in files.items():
        (work / rel).write_text(text)
    git("add", "-A", cwd=work)
    env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": "mallory@example.invalid", "GIT_COMMITTER_NAME": "ci",
           "GIT_COMMITTER_EMAIL": "ci@example.invalid"}  # fmt: skip
    git("-c", "commit.gpgsign=false", "commit", "--quiet", "-m", subject, "-m", "body line", cwd=work, env=env)
    push(work)
    return git("rev-parse", "HEAD", cwd=work)


def loaded(ui, page=None) -> None:  # type: ignore[no-untyped-def]
    """Wait for the page's script to say it loaded; say what went wrong when it does not."""
    page = page or ui.page
    try:
        page.wait_for_selector("body[data-loaded=yes]", timeout=60_000)
    except Exception:
        note = page.locator("#list-note").inner_text() if page.locator("#list-note").count() else ""
        rows = page.locator("#workflows tbody tr").count()
        raise AssertionError(
            f"the page did not load: errors {ui.errors}, note {note!r}, {rows} rows, "
            f"{page.url}\n{Path(ui.server.log).read_text()[-4000:]}"
        ) from None


def finished(server, sync_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    def done() -> dict | None:  # type: ignore[type-arg]
        run = server.client("viewer").get(f"/api/v1/syncs/{sync_id}").json()
        return run if run["done"] else None

    return wait_until(done, 120)  # type: ignore[no-any-return]


def test_commit_subject_and_author_are_text_and_secret_data_never_shows(
    start_server, browser, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"password": SECRET_VALUE}}  # fmt: skip
    work = add_workflow(server, tmp_path, "web", namespace, {"k8s/app.yaml": dump(configmap("cfg", {"a": "1"}))},
                        labels={"team": "payments"}, sync_policy={"pre_sync_hooks": ["echo hook-output-$((6*7))"]})  # fmt: skip
    # The subject quotes a secret-looking value (shown: it is what Git says) and the Secret's own value (masked).
    subject = f"{XSS} rotate token=looks-secret-but-is-text and {SECRET_VALUE}"
    sha = hostile_commit(work, {"k8s/app.yaml": dump(configmap("cfg", {"a": "2"}), secret)}, subject, AUTHOR)
    run = server.client("operator").post("/api/v1/workflows/web/sync", json={}).json()
    record = finished(server, run["id"])["result"]
    assert record["status"] == "succeeded", record["message"]
    assert record["commit_hash"] == sha
    assert record["commit_author"] == f"{AUTHOR} <mallory@example.invalid>"
    assert "token=looks-secret-but-is-text" in record["commit_message"] and XSS in record["commit_message"]
    assert SECRET_VALUE not in str(record) and "body line" not in record["commit_message"]

    ui = browser(server)
    page = ui.login("viewer", "/workflows/web")
    page.wait_for_selector("#history tbody tr")
    history = page.inner_text("#history")
    assert XSS in history and AUTHOR in history and "token=looks-secret-but-is-text" in history
    assert "hook-output-42" not in history and "echo hook-output-$((6*7))" in history  # the hook, not its output
    assert page.evaluate(INJECTED) == [None, 0]
    # The row's link opens what that sync changed: the diff as recorded, Secret values masked.
    page.locator(f'#history tr[data-sync="{run["id"]}"] a.diff-link').click()
    page.wait_for_url(f"{server.url}/workflows/web/syncs/{run['id']}")
    loaded(ui)
    assert XSS in page.inner_text("#record") and "ConfigMap/cfg" in page.inner_text("#changes")
    assert "Secret/creds" in page.inner_text("#changes")
    assert "hook-output-42" in (page.locator("#hooks").text_content() or "")  # the hook's output, on the sync's page
    assert page.evaluate(INJECTED) == [None, 0]
    assert SECRET_VALUE not in page.content()
    screenshot(page, "sync", tmp_path, docs=True)
    assert SECRET_VALUE not in server.client("viewer").get("/api/v1/workflows/web/history").text

    # Filter values from the URL are shown back as text, never markup; a bad word is a clear error.
    for query in (f"namespace={quote(XSS)}&label={quote(XSS)}&q={quote(XSS)}&cluster={quote(XSS)}",
                  f"sync={quote(XSS)}"):  # fmt: skip
        page.goto(f"{server.url}/?{query}")
        page.wait_for_selector("body[data-loaded=yes], #list-note.error, #list-note .error")
        assert page.evaluate(INJECTED) == [None, 0], query
    assert XSS in page.inner_text("#filter-error") and "is not one of Synced, OutOfSync, Unknown" in page.inner_text(
        "#filter-error"
    )
    assert ui.blocked == [] and ui.errors == []


def test_a_hundred_workflows_filter_by_url_and_api(start_server, browser, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server("--no-controller")  # nothing recomputes the sync statuses set below
    add_workflow(server, tmp_path, "first", namespace, {"k8s/app.yaml": dump(configmap("cfg"))})
    engine = server.engine()
    # 120 workflows straight into the store (none synced): what the overview lists is the store's.
    words = [("Synced", "Healthy"), ("OutOfSync", "Degraded"), ("OutOfSync", "Healthy"), ("Unknown", "Unknown")]
    for i in range(120):
        sync, health = words[i % 4]
        engine.create_workflow({
            "id": f"app-{i:03d}", "repository": "repo-first", "target_path": f"apps/app-{i:03d}",
            "destination": {"namespace": f"team-{i % 3}", **({"context": "prod"} if i % 5 == 0 else {})},
            "labels": {"team": ["payments", "search"][i % 2], "tier": "web"},
        })  # fmt: skip
        engine.store.set_workflow_state(f"app-{i:03d}", assessment={
            "sync_status": {"status": sync, "created": 0, "changed": 1 if sync == "OutOfSync" else 0, "missing": 0,
                            "extra": 0, "revision": None, "message": ""},
            "health": {"status": health, "message": ""}, "assessed_at": "2026-12-01T10:00:00Z"})  # fmt: skip

    viewer = server.client("viewer")
    started = time.monotonic()
    everything = viewer.get("/api/v1/workflows", params={"live": "true"})
    assert everything.status_code == 200 and len(everything.json()) == 121
    assert time.monotonic() - started < 10, "listing 121 workflows took too long"
    row = next(r for r in everything.json() if r["id"] == "app-005")
    assert row["path"] == "apps/app-005" and row["namespace"] == "team-2" and row["cluster"] == "prod"
    assert row["labels"] == {"team": "search", "tier": "web"} and row["status"] == "active"  # the old field stays

    def ids(**params: str | list[str]) -> set[str]:
        r = viewer.get("/api/v1/workflows", params=params)
        assert r.status_code == 200, r.text
        return {w["id"] for w in r.json()}

    expected = {f"app-{i:03d}" for i in range(120) if i % 4 == 1 and i % 3 == 0}  # odd: team search
    assert len(expected) == 10
    assert ids(sync="OutOfSync", health="Degraded", namespace="team-0", label="team=search") == expected
    assert ids(health=["Degraded", "Unknown"], label=["team=payments", "tier"]) == {
        f"app-{i:03d}" for i in range(120) if i % 4 in (1, 3) and i % 2 == 0
    }
    assert ids(cluster="prod") == {f"app-{i:03d}" for i in range(0, 120, 5)}
    assert "first" in ids(cluster="in-cluster") and ids(label="team=nobody") == set()
    bad = viewer.get("/api/v1/workflows", params={"health": "Broken"})
    assert bad.status_code == 400 and "health: 'Broken' is not one of Healthy" in bad.text

    # The page: the same filters from the URL, the same rows; a hundred rows in reasonable time.
    ui = browser(server)
    page = ui.login("viewer")
    started = time.monotonic()
    page.goto(server.url + "/")
    loaded(ui)
    assert page.locator("#workflows tbody tr").count() == 121
    assert time.monotonic() - started < 20, "the overview of 121 workflows took too long"
    cells = page.inner_text('#workflows tr[data-workflow="app-005"]')
    assert "apps/app-005" in cells and "team-2" in cells and "prod" in cells and "team=search" in cells
    assert "Status" not in page.inner_text("#workflows thead")  # Argo CD's words only: Sync, Health, Last operation
    page.goto(f"{server.url}/?sync=OutOfSync&health=Degraded&namespace=team-0&label=team%3Dsearch")
    loaded(ui)
    shown = {page.locator("#workflows tbody tr").nth(i).get_attribute("data-workflow")
             for i in range(page.locator("#workflows tbody tr").count())}  # fmt: skip
    assert shown == expected
    assert (
        page.locator("#f-sync").input_value() == "OutOfSync" and page.locator("#f-namespace").input_value() == "team-0"
    )
    # Choosing in a list changes the URL (a link to share) and the rows.
    page.select_option("#f-health", "Healthy")
    page.wait_for_url("**health=Healthy**")
    loaded(ui)
    wait_until(lambda: page.locator("#workflows tbody tr").count() == 1
               and "No workflow matches" in page.inner_text("#workflows"), 30)  # fmt: skip
    page.goto(f"{server.url}/?label=tier%3Dweb&namespace=team-1")
    loaded(ui)
    screenshot(page, "overview-filtered", tmp_path, docs=True)
    phone = browser(server, width=390, height=844)
    phone.login("viewer", "/?label=team%3Dsearch&namespace=team-1&sync=OutOfSync")
    phone.page.wait_for_selector("body[data-loaded=yes]")
    width = phone.page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the overview scrolls sideways on a phone ({width}px)"
    screenshot(phone.page, "overview-phone", tmp_path, docs=True)
    assert ui.blocked == [] and ui.errors == [] and phone.errors == []
