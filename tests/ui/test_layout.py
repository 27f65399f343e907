"""The dashboard for every reader: a phone's width without sideways scrolling, the keyboard
alone, screen readers (labels, live regions), and the system's dark or light setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.manifests import configmap, deployment, dump

from .conftest import add_workflow, screenshot

pytestmark = pytest.mark.cluster

NO_SIDEWAYS = "() => [document.documentElement.scrollWidth, window.innerWidth]"
# What sticks out, to say so when a page scrolls sideways.
WIDE = """() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1)
  .slice(0, 8).map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`)"""


def test_a_phone_never_scrolls_sideways(start_server, browser, git_http_server, tmp_path: Path, namespace: str) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    long_name = "a-workflow-with-a-rather-long-name-that-goes-on-and-on"
    files = {"k8s/app.yaml": dump(configmap("settings-with-a-long-name", {"url": "https://" + "very-long." * 30}),
                                  deployment("web", 2))}  # fmt: skip
    add_workflow(server, tmp_path, long_name, namespace, files, git_http_server, name="Checkout " * 12)
    ui = browser(server, width=390, height=844)
    page = ui.login("operator")
    page.wait_for_selector("body[data-loaded=yes]")
    width, inner = page.evaluate(NO_SIDEWAYS)
    assert inner == 390 and width <= inner, (width, inner, page.evaluate(WIDE))
    screenshot(page, "phone", tmp_path, docs=True)

    page.goto(f"{server.url}/workflows/{long_name}")
    page.wait_for_selector("#diff .changes")
    page.wait_for_selector("#objects .object")
    for summary in page.locator("#objects summary").all():
        summary.click()  # the YAML views, open
    page.get_by_role("button", name="Sync", exact=True).click()
    page.wait_for_selector("#sync-confirm:not([disabled])")
    width, inner = page.evaluate(NO_SIDEWAYS)
    assert width <= inner, ("sync dialog", width, inner, page.evaluate(WIDE))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_selector("#history tbody tr")
    width, inner = page.evaluate(NO_SIDEWAYS)
    assert width <= inner, ("workflow page", width, inner, page.evaluate(WIDE))
    screenshot(page, "phone-workflow", tmp_path)
    assert ui.blocked == [] and ui.errors == []


def test_the_keyboard_alone_syncs_and_screen_readers_hear_it(
    start_server, browser, tmp_path: Path, namespace: str
) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    add_workflow(server, tmp_path, "web", namespace, {"k8s/app.yaml": dump(configmap("app"))})
    ui = browser(server)
    page = ui.page
    page.goto(server.url + "/workflows/web")
    # The token field takes the focus by itself (autofocus); under load that can come a moment
    # after the page has loaded, and keys typed before it would go nowhere.
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(server.tokens["operator"])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/workflows/web")
    page.wait_for_selector("#diff .changes")

    # Tab reaches the Sync button, the focus is visible, Enter opens the dialog and Escape closes it.
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "btn-sync":
            break
    assert page.evaluate("document.activeElement.id") == "btn-sync"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    page.keyboard.press("Enter")
    page.wait_for_selector("#sync-dialog[open]")
    page.wait_for_selector("#sync-confirm:not([disabled])")
    assert page.evaluate("document.activeElement.id") == "sync-confirm"
    page.keyboard.press("Escape")
    page.wait_for_selector("#sync-dialog", state="hidden")
    page.keyboard.press("Enter")  # the focus went back to Sync
    page.wait_for_selector("#sync-confirm:not([disabled])")
    page.keyboard.press("Enter")  # Confirm
    page.wait_for_selector("#progress .done.good", timeout=90_000)

    # Progress is announced (a live region) and every control has an accessible name.
    assert page.get_attribute("#progress", "aria-live") == "polite"
    assert page.get_attribute("#progress", "role") == "status"
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, input:not([type=hidden]), select, textarea, a[href]')]
             .filter(el => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
             .map(el => el.outerHTML)"""
    )
    assert unnamed == []
    assert page.locator("h1").count() == 1 and page.locator("main#main").count() == 1


def test_dark_and_light_follow_the_system(start_server, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server()
    colours = {}
    for scheme in ("light", "dark"):
        ui = browser(server, scheme=scheme)
        page = ui.login("viewer")
        page.wait_for_selector("body[data-loaded=yes]")
        colours[scheme] = page.evaluate(
            "[getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
        )
        screenshot(page, f"overview-{scheme}-empty", tmp_path)
    assert colours["light"][0] == "rgb(246, 247, 249)" and colours["dark"][0] == "rgb(13, 17, 23)"
    assert colours["light"][1] != colours["dark"][1]
