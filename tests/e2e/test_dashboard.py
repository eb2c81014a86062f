"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) on ``workflows
dev``: it finds an instance, reads its timeline, sends an event through its confirmed action and sees
the instance complete. A screenshot goes to the test's output; with ``UPDATE_SCREENSHOTS=1`` it also
replaces ``docs/img/dashboard-timeline.png``, the one the README shows.

``make test`` installs chromium (apt) and Playwright (the dev extra). Without them the test is skipped,
except under CI, where it fails."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework.local.devprocess import DevProcess, until

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "dashboard-timeline.png"
VIEWPORT = {"width": 1360, "height": 860}
WAIT_MS = 30_000  # the longest a page element may take to show what the test expects
HOSTILE = "<img src=x onerror=window.pwned=1>ana"  # shown as text, never parsed as HTML

pytestmark = pytest.mark.slow


def _missing(what: str) -> None:
    message = f"{what} is not installed: run `make test`, which installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        _missing("Debian's chromium")
    assert path is not None
    return path


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevProcess]:
    started = DevProcess(
        tmp_path,
        "dev",
        "--port",
        "0",
        "--workers",
        "1",
        "--sweep-every",
        "1",
        modules="tests.e2e.dashflows",
        cwd=ROOT,
    )
    yield started
    started.stop(signal.SIGKILL)


def test_the_dashboard_shows_a_timeline_and_sends_an_event(
    dev: DevProcess, chromium: str, tmp_path: Path
) -> None:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright")
    assert (
        dev.call("POST", "/workflows/dash-order/instances", {"id": "order-7", "params": {"amount": 42}})[0]
        == 201
    )
    rejected = {"id": "order-8", "params": {"amount": 1, "reject": HOSTILE}}
    assert dev.call("POST", "/workflows/dash-order/instances", rejected)[0] == 201

    def waiting_for_approval() -> bool:
        entries = dev.call("GET", "/instances/order-7/history")[1]["entries"]
        return any(e["kind"] == "wait" and e["status"] == "waiting" for e in entries)

    until("the instance to wait for its approval", waiting_for_approval)

    problems: list[str] = []
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox needs a user namespace that a root session or a container lacks.
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{dev.url}/ui")
            expect(page.locator("#workflow")).to_have_value("dash-order")

            # The list: the instance, waiting; the status filter narrows it.
            row = page.locator("#instances tbody tr", has_text="order-7")
            expect(row.locator(".badge")).to_have_text("waiting", timeout=WAIT_MS)
            page.select_option("#status-filter", "complete")
            expect(page.locator("#instances tbody")).to_contain_text("No instances with status complete")
            page.select_option("#status-filter", "")
            row.click()

            # The timeline: three attempts of the retried step, the sleep, the wait with its event type.
            timeline = page.locator("#d-timeline")
            charge = timeline.locator('li[data-kind="step"][data-name="charge"]')
            expect(charge.locator(".attempts li")).to_have_count(3, timeout=WAIT_MS)
            expect(charge.locator(".attempts li").nth(0)).to_contain_text(
                "ConnectionError: payment API unavailable"
            )
            expect(charge.locator(".attempts li").nth(2)).to_contain_text("ok")
            expect(charge.locator(".badge")).to_have_text("complete")
            expect(timeline.locator('li[data-kind="sleep"][data-name="cool off"] .badge')).to_have_text(
                "complete"
            )
            wait = timeline.locator('li[data-kind="wait"][data-name="approval"]')
            expect(wait.locator(".badge")).to_have_text("waiting")
            expect(wait).to_contain_text("for event approved, deadline")
            expect(page.locator("#d-wait")).to_contain_text("an event of type approved in approval, deadline")
            expect(page.locator("#d-counts")).to_contain_text("2 retries")
            page.screenshot(path=str(tmp_path / "dashboard-waiting.png"), full_page=True)

            # The action: a dialog to confirm, prefilled with the event type the instance waits for.
            page.click('button[data-action="event"]')
            dialog = page.locator("#confirm")
            expect(dialog).to_be_visible()
            expect(page.locator("#event-type")).to_have_value("approved")
            page.fill("#event-payload", '{"by": "ana"}')
            page.screenshot(path=str(tmp_path / "dashboard-confirm.png"))
            page.click("#confirm-ok")
            expect(dialog).to_be_hidden()
            expect(page.locator("#toast")).to_contain_text("Event sent")

            # Live refresh: the instance completes, and the event and the last step are in the timeline.
            expect(page.locator("#d-status")).to_have_text("complete", timeout=WAIT_MS)
            expect(timeline.locator('li[data-kind="event"][data-name="approved"] .badge')).to_have_text(
                "consumed"
            )
            expect(timeline.locator('li[data-kind="step"][data-name="ship"] .badge')).to_have_text("complete")
            expect(page.locator("#d-output")).to_contain_text("shipped, approved by ana")
            expect(row.locator(".badge")).to_have_text("complete", timeout=WAIT_MS)
            page.locator("#toast").evaluate("toast => toast.remove()")  # not in the picture
            shot = tmp_path / "dashboard-timeline.png"
            page.screenshot(path=str(shot), full_page=True)

            # An error message with markup in it, opened by id: shown as text, never run.
            page.fill("#open-id", "order-8")
            page.click("#open-btn")
            expect(page.locator("#d-status")).to_have_text("errored", timeout=WAIT_MS)
            expect(page.locator("#d-error")).to_contain_text(HOSTILE)
            expect(timeline.locator('li[data-name="charge"] .attempts li').nth(0)).to_contain_text(HOSTILE)
            assert page.locator("#detail img").count() == 0 and page.evaluate("window.pwned") is None
        finally:
            browser.close()
    assert problems == []  # no script error, no Content-Security-Policy violation
    status: Any = dev.call("GET", "/instances/order-7")[1]
    assert status["status"] == "complete" and status["output"]["shipped"] == "shipped, approved by ana"
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
