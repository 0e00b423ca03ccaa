"""The console in a real browser (Playwright driving Debian's chromium): every page clicked
through as an admin, a reviewer refused what is not theirs, keyboard and labels checked, times
shown in the viewer's zone, and no Content Security Policy violation on any page.

Set BASTION_CONSOLE_SCREENSHOTS to a folder to save a screenshot of each page there
(`make screenshots` refreshes the ones under docs/console/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from bastion.audit import AuditEntry
from bastion.console.web import NAVIGATION
from conftest import LiveServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SCREENSHOTS = os.environ.get("BASTION_CONSOLE_SCREENSHOTS")

# Every control a person can reach must say what it is to a screen reader.
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML)"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run `make browser` (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def traffic(server: LiveServer) -> None:
    """A few answered, blocked and redacted requests, so the pages have something to show."""
    key = server.key("acme", "bob", "user")
    for text in ("What is our refund policy?", "Summarise the Q3 plan", "project nightingale"):
        httpx.post(
            server.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": text}]},
            headers={"Authorization": f"Bearer {key}"},
        )


def sign_in(page: Page, server: LiveServer, key: str) -> None:
    page.goto(server.url + "/console/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def watch_csp(page: Page) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return violations


def test_an_admin_clicks_through_every_page(browser: Browser, server: LiveServer) -> None:
    traffic(server)
    context = browser.new_context(timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    violations = watch_csp(page)
    sign_in(page, server, server.key("acme", "alice", "admin"))
    page.wait_for_url("**/console/")
    labels = [
        a.inner_text()
        for a in page.get_by_role("navigation", name="Console pages").get_by_role("link").all()
    ]
    assert len(labels) == 10 and labels[0] == "Overview" and labels[-1] == "API keys"
    for label in labels:
        page.get_by_role("navigation", name="Console pages").get_by_role("link", name=label).click()
        page.wait_for_load_state()
        assert page.locator("h1").first.is_visible(), label
        current = page.get_by_role("link", name=label)
        assert current.get_attribute("aria-current") == "page", label
        assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {label}"
        assert "Something went wrong" not in page.content(), label
        if SCREENSHOTS:
            name = label.lower().replace(" ", "-")
            page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
    assert violations == []


def test_times_show_in_the_viewers_zone(browser: Browser, server: LiveServer) -> None:
    traffic(server)
    page = browser.new_context(timezone_id="Asia/Tokyo").new_page()
    sign_in(page, server, server.key("acme", "alice", "admin"))
    page.goto(server.url + "/console/audit")
    first = page.locator("td time").first
    utc = first.get_attribute("title") or ""
    assert utc.endswith("UTC") and first.inner_text() != utc  # rewritten by console.js


def test_the_audit_trail_by_keyboard(browser: Browser, server: LiveServer) -> None:
    traffic(server)
    page = browser.new_context().new_page()
    sign_in(page, server, server.key("acme", "alice", "admin"))
    page.goto(server.url + "/console/audit")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("Status").select_option("blocked")
    page.get_by_label("User").focus()
    page.keyboard.type("bob")
    page.keyboard.press("Enter")  # submits the filter form
    page.wait_for_url("**/console/audit?*status=blocked*")
    rows = page.locator("tbody tr")
    assert rows.count() == 1 and "blocked" in rows.first.inner_text()
    rows.first.get_by_role("link").click()
    assert page.get_by_role("heading", name="Guard verdicts").is_visible()


def test_a_reviewer_sees_the_review_queue_only(browser: Browser, server: LiveServer) -> None:
    page = browser.new_context().new_page()
    violations = watch_csp(page)
    sign_in(page, server, server.key("acme", "rita", "reviewer"))
    page.wait_for_url("**/console/review")
    links = page.get_by_role("navigation", name="Console pages").get_by_role("link").all()
    assert [a.inner_text() for a in links] == ["Review queue"]
    for item in NAVIGATION:
        if item.admin_only:
            page.goto(server.url + "/console" + item.path)
            assert "this page is for admins" in page.get_by_role("alert").inner_text(), item
    assert violations == []


def test_hostile_text_is_shown_not_run(browser: Browser, server: LiveServer) -> None:
    payload = '<script>alert("user")</script><img src=x onerror=alert("img")>'
    server.platform.audit.append(
        AuditEntry(
            trace_id="hostile", tenant="acme", user=payload, role="user", key_id=None,
            app=payload, model="echo", status="blocked",
            prompt=[{"role": "user", "content": payload}],
            verdicts=[{"guard": "deny_list", "stage": "input", "action": "block", "score": 1.0,
                       "findings": [{"kind": "deny_list", "detail": payload}]}],
        )
    )  # fmt: skip
    page = browser.new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server, server.key("acme", "alice", "admin"))
    for path in ("/trust", "/audit", "/audit/hostile"):
        page.goto(server.url + "/console" + path)
        page.wait_for_load_state("load")
    assert payload in page.content().replace("&lt;", "<").replace("&gt;", ">").replace(
        "&quot;", '"'
    )
    assert dialogs == []


def test_a_user_key_is_refused_at_sign_in(browser: Browser, server: LiveServer) -> None:
    page = browser.new_context().new_page()
    sign_in(page, server, server.key("acme", "ursula", "user"))
    assert "for admins and reviewers" in page.get_by_role("alert").inner_text()
    page.goto(server.url + "/console/")
    assert page.url.startswith(server.url + "/console/login")
