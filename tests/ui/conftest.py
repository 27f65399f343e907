"""The dashboard in a real browser: the system's Chromium, driven by Playwright, against the real
``slipway server`` (uvicorn on 127.0.0.1), the local cluster and real Git repositories.

``browser(server)`` opens a fresh Chromium profile (its own user-data directory) whose every
request to a host other than the server is aborted and recorded in ``.blocked``: the dashboard
must work with nothing but the server. ``.login(role)`` logs in through the form, as a person
does. Screenshots go to a temporary directory, or to ``docs/`` for the documentation when
``SLIPWAY_UI_SCREENSHOTS=docs``. Without Chromium the tests fail and say how to install it.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, Route, sync_playwright

from tests.gitservers import HttpGitServer, make_repo
from tests.server.conftest import SlipwayServer, start_server, wait_until

__all__ = ["UiBrowser", "add_workflow", "browser", "playwright", "screenshot", "start_server", "wait_until"]

DOCS = Path(__file__).parents[2] / "docs"
# Chromium's own background traffic (updates, sync, field trials) is refused by a closed network
# and is none of the page's business: these flags keep it from starting.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = os.environ.get("SLIPWAY_CHROMIUM") or shutil.which("chromium")
    if not found and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if not found:
        pytest.fail(
            "Chromium is not installed: the dashboard's tests drive the system's Chromium through Playwright. "
            "Install the Debian package chromium (scripts/setup.sh does), or set SLIPWAY_CHROMIUM to its path.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Per module, not per session: Playwright's sync API keeps an event loop running in this thread
    # until it stops, and tests after these start loops of their own.
    with sync_playwright() as p:
        yield p


@dataclass
class UiBrowser:
    server: SlipwayServer
    context: BrowserContext
    page: Page
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def login(self, role: str, path: str = "/") -> Page:
        """Log in through the form with the server's token for ``role`` and land on ``path``."""
        page = self.page
        page.goto(self.server.url + path)
        page.get_by_label("Token").fill(self.server.tokens[role])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{self.server.url}{path}*")
        return page

    def session_cookie(self) -> dict[str, Any]:
        return next(c for c in self.context.cookies() if c["name"] == "slipway_session")


@pytest.fixture
def browser(playwright: Playwright, tmp_path: Path) -> Iterator[Callable[..., UiBrowser]]:
    """browser(server, width=1280, height=800, scheme="light") -> a UiBrowser with one page open."""
    opened: list[BrowserContext] = []

    def open_browser(server: SlipwayServer, width: int = 1280, height: int = 800, scheme: str = "light") -> UiBrowser:
        profile = tmp_path / f"chromium-profile-{len(opened)}"
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium(),
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            color_scheme=scheme,  # type: ignore[arg-type]
        )
        opened.append(context)
        context.set_default_timeout(60_000)  # a shared 2-core machine can be slow
        ours = urlsplit(server.url).netloc
        ui = UiBrowser(server, context, context.pages[0] if context.pages else context.new_page())

        def only_the_server(route: Route) -> None:
            if urlsplit(route.request.url).netloc == ours:
                route.continue_()
            else:
                ui.blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_server)
        ui.page.on("pageerror", lambda e: ui.errors.append(str(e)))
        return ui

    yield open_browser
    for context in opened:
        context.close()


def add_workflow(
    server: SlipwayServer,
    tmp_path: Path,
    wf_id: str,
    namespace: str,
    files: dict[str, str],
    git: HttpGitServer | None = None,
    **options: Any,
) -> Path:
    """A Git repository (``repo-<wf_id>``) and a workflow ``wf_id`` on it, registered over the API as admin;
    returns the repository's work tree (commit and push to change what the workflow declares). With
    ``git``, the repository is served over HTTP by that server; else it is a local path."""
    if git is not None:
        name = f"{wf_id}-{secrets.token_hex(3)}"
        work = git.create_repo(name, files, workdir=tmp_path / f"repo-{wf_id}")
        url = git.public_url(name)
    else:
        work = make_repo(tmp_path / f"repo-{wf_id}", files)
        url = str(work.with_name(work.name + ".git"))
    admin = server.client("admin")
    r = admin.post("/api/v1/repositories", json={"id": f"repo-{wf_id}", "url": url})
    assert r.status_code == 201, r.text
    policy = options.pop("sync_policy", {})
    body = {
        "id": wf_id,
        "repository": f"repo-{wf_id}",
        "target_path": "k8s",
        "destination": {"namespace": namespace},
        "sync_policy": {"health_check": {"timeout": "60s"}, **policy},
        **options,
    }
    r = admin.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    return work


def screenshot(page: Page, name: str, tmp_path: Path, *, docs: bool = False, element: str | None = None) -> Path:
    """A PNG of the page (or of one element of it) in the test's temp dir; one the docs show goes to
    ``docs/ui-<name>.png`` instead when ``SLIPWAY_UI_SCREENSHOTS=docs``."""
    to_docs = docs and os.environ.get("SLIPWAY_UI_SCREENSHOTS") == "docs"
    target = DOCS / f"ui-{name}.png" if to_docs else tmp_path / f"{name}.png"
    if element:
        page.locator(element).screenshot(path=str(target))
    else:
        page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000, f"{target} looks empty"
    return target
