"""What the dashboard refuses: a viewer's actions, requests from other sites, a session after
logout or revocation, and HTML from repositories and the cluster (shown as text, never run)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.gitservers import free_port
from tests.manifests import configmap, deployment, dump

from .conftest import add_workflow, wait_until

pytestmark = pytest.mark.cluster

FORGED_FETCH = """async ([url, csrf]) => {
  const r = await fetch(url, {method: "POST", headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"},
                              body: "{}", credentials: "same-origin"});
  return [r.status, await r.text()];
}"""


def history(server, wf: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return server.client("viewer").get(f"/api/v1/workflows/{wf}/history").json()  # type: ignore[no-any-return]


def test_a_viewer_sees_no_action_and_the_server_refuses_them(
    start_server, browser, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    add_workflow(server, tmp_path, "web", namespace, {"k8s/app.yaml": dump(configmap("app"))})
    ui = browser(server)
    page = ui.login("viewer", "/workflows/web")
    page.wait_for_selector("#objects .error")  # nothing planned yet, and a viewer never plans
    assert "needs operator" in page.inner_text("#objects")
    assert server.client("operator").get("/api/v1/workflows/web/resources").status_code == 200
    page.reload()
    page.wait_for_selector("#objects .object")
    assert "As planned for token:operator-" in page.inner_text("#objects")
    page.wait_for_selector("#history p")
    for name in ("Sync", "Rollback", "Confirm"):
        assert page.get_by_role("button", name=name, exact=True).count() == 0
    assert page.locator("#btn-auto").count() == 0
    assert "needs the operator role" in page.inner_text("#diff")
    assert page.get_by_role("button", name="Refresh").is_visible()

    # A POST forged from the viewer's own page, with the session's CSRF token: the role decides, 403.
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    for path in ("/api/v1/workflows/web/sync", "/api/v1/workflows/web/auto-sync", "/api/v1/workflows/web/rollback"):
        status, body = page.evaluate(FORGED_FETCH, [server.url + path, csrf])
        assert status == 403 and "needs operator" in body, (path, status, body)
    assert history(server, "web") == []
    assert server.engine().workflow("web").auto_sync is False
    assert ui.errors == []


class _Attacker(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[tuple[int, type[_Attacker]]]:
    """Another site on loopback (another port: same site by the browser's rules, another origin)."""
    handler = type("Handler", (_Attacker,), {})
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield port, handler
    httpd.shutdown()
    httpd.server_close()


def test_requests_from_another_site_are_refused(
    start_server, browser, attacker, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    add_workflow(server, tmp_path, "web", namespace, {"k8s/app.yaml": dump(configmap("app"))})
    ui = browser(server)
    page = ui.login("operator")
    page.wait_for_selector("body[data-loaded=yes]")
    port, handler = attacker
    target = f"{server.url}/api/v1/workflows/web/sync"
    handler.page = (
        f'<form id="f" method="POST" action="{target}" enctype="text/plain">'
        '<input name=\'{"expected_plan": "x", "a":"\' value=\'"}\'></form>'
        '<script>document.getElementById("f").submit()</script>'
    ).encode()
    # Let the browser reach the attacker for this test only: everything else stays blocked.
    ui.context.route(f"http://127.0.0.1:{port}/**", lambda route: route.continue_())
    ui.context.route(f"http://localhost:{port}/**", lambda route: route.continue_())

    # Same site (another port of 127.0.0.1): the Strict cookie goes along, the CSRF check refuses.
    with page.expect_response(target) as answer:
        page.goto(f"http://127.0.0.1:{port}/")
    assert answer.value.status == 403, answer.value.text()
    assert "CSRF" in answer.value.text() or "cross-site" in answer.value.text()

    # Another site altogether (localhost): the Strict cookie stays home, so there is no session.
    with page.expect_response(target) as answer:
        page.goto(f"http://localhost:{port}/")
    assert answer.value.status == 401, answer.value.text()
    assert history(server, "web") == []

    # The session's cookie and its right CSRF token, but sent from another origin: refused too.
    page.goto(server.url + "/")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    cookie = ui.session_cookie()["value"]
    base = {"Cookie": f"slipway_session={cookie}", "X-CSRF-Token": str(csrf)}
    with httpx.Client(base_url=server.url, timeout=30) as raw:
        r = raw.post("/api/v1/workflows/web/sync", headers={**base, "Origin": f"http://127.0.0.1:{port}"})
        assert r.status_code == 403 and "Origin" in r.json()["error"]
        r = raw.post("/api/v1/workflows/web/sync", headers=base)  # no Origin at all
        assert r.status_code == 403
        r = raw.post("/api/v1/workflows/web/sync", headers={"Cookie": base["Cookie"], "Origin": server.url})
        assert r.status_code == 403 and "CSRF" in r.json()["error"]  # no CSRF token
        r = raw.post("/api/v1/workflows/web/sync", headers={**base, "Origin": server.url, "X-CSRF-Token": "guess"})
        assert r.status_code == 403
        assert history(server, "web") == []
        # ... and the same request from this very origin is the page's own: it works.
        r = raw.post("/api/v1/workflows/web/sync", headers={**base, "Origin": server.url})
        assert r.status_code == 202, r.text
    wait_until(lambda: [h["status"] for h in history(server, "web")] == ["succeeded"], 60, step=0.2)


def test_logout_and_revocation_end_the_session(start_server, browser) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    ui = browser(server)

    # A wrong token: the form says so, with no cookie and a 401.
    page = ui.page
    page.goto(server.url + "/")
    page.get_by_label("Token").fill("slw_000000000000_" + "x" * 40)
    with page.expect_response(f"{server.url}/login") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 401
    assert "not valid" in page.get_by_role("alert").inner_text()
    assert [c for c in ui.context.cookies() if c["name"] == "slipway_session"] == []

    page = ui.login("operator")
    page.wait_for_selector("body[data-loaded=yes]")
    old = ui.session_cookie()["value"]
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server.url}/login")
    with httpx.Client(base_url=server.url, timeout=30, headers={"Cookie": f"slipway_session={old}"}) as raw:
        r = raw.get("/api/v1/workflows")
        assert r.status_code == 401 and "session has ended" in r.json()["error"]
        assert raw.get("/").status_code == 303

    # Revoking the token ends its sessions at once.
    page = ui.login("operator")
    page.wait_for_selector("body[data-loaded=yes]")
    cookie = ui.session_cookie()["value"]
    name = server.client("operator").get("/api/v1/whoami").json()["name"]
    assert server.client("admin").delete(f"/api/v1/tokens/{name}").status_code == 200
    with httpx.Client(base_url=server.url, timeout=30, headers={"Cookie": f"slipway_session={cookie}"}) as raw:
        r = raw.get("/api/v1/workflows")
        assert r.status_code == 401 and "revoked" in r.json()["error"]
    page.reload()
    page.wait_for_url(f"{server.url}/login?next=/")


XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2">'


def test_html_from_git_and_the_cluster_is_shown_as_text(start_server, browser, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"password": "pa55-w0rd-never-shown"}}  # fmt: skip
    bad = deployment("web", 1, pod={"containers": [{"name": "app", "image": "x", "imagePullPolicy": XSS}]})
    files = {"k8s/app.yaml": dump(configmap("cfg", {"page": XSS}, annotations={"note": XSS}), secret, bad)}
    add_workflow(server, tmp_path, "web", namespace, files, name=XSS)
    ui = browser(server)
    page = ui.login("operator", "/workflows/web")
    page.wait_for_selector("#objects .object")
    page.wait_for_selector("#diff .conflicts")  # the API server refuses the Deployment: a validation conflict
    assert XSS in page.inner_text("#wf-title")
    assert XSS in page.inner_text("#diff")  # the ConfigMap's diff and the conflict's message
    page.get_by_text("YAML of ConfigMap/cfg").click()
    page.get_by_text("YAML of Secret/creds").click()
    assert XSS in page.inner_text("#objects")
    assert "pa55-w0rd-never-shown" not in page.content() and "********" in page.inner_text("#objects")

    # A sync the cluster refuses: its message (from the API server, quoting the manifest) in the history.
    page.get_by_role("button", name="Sync", exact=True).click()
    page.wait_for_selector("#sync-confirm:not([disabled])")
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#history tbody tr")
    # A rollback reason is text a person typed: shown as typed.
    r = server.client("operator").post("/api/v1/workflows/web/rollback", json={"reason": XSS})
    assert r.status_code == 202, r.text
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-loaded=yes]")
    assert XSS in page.inner_text("#workflows")

    for path in ("/", "/workflows/web"):
        page.goto(server.url + path)
        page.wait_for_selector("body[data-loaded=yes], #history tbody tr")
        if path != "/":
            wait_until(lambda: f"Reason: {XSS}" in page.inner_text("#history"), 30)
        injected = page.evaluate(
            "() => [window.__xss, document.querySelectorAll('script:not([src]), img[src=\"x\"], [onerror]').length]"
        )
        assert injected == [None, 0], (path, injected)
    assert "pa55-w0rd-never-shown" not in page.content()
    # The pages also forbid inline scripts, so an escaping slip would still not run.
    csp = httpx.get(server.url + "/login").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert ui.blocked == [] and ui.errors == []
