"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) on ``workflows
dev``: it finds instances whose ids hold ``/`` and ``@``, reads their timelines, skips a sleep and sends
an event through its confirmed actions, sees them complete, and sees a step while it runs. A screenshot
goes to the test's output; with ``UPDATE_SCREENSHOTS=1`` it also replaces
``docs/img/dashboard-timeline.png``, the one the README shows.

``make test`` installs chromium (apt) and Playwright (the dev extra). Without them the test is skipped,
except under CI, where it fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework.core.ids import path_segment
from framework.local.devprocess import DevProcess, until

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "img" / "dashboard-timeline.png"
VIEWPORT = {"width": 1360, "height": 860}
WAIT_MS = 30_000  # the longest a page element may take to show what the test expects
HOSTILE = "<img src=x onerror=window.pwned=1>ana"  # shown as text, never parsed as HTML
SLASHED, AT, COLON = "orders/2024/7", "ana@example.com", "order:123"  # ids as users key things

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
        "2",  # one runs the slow step while the other runs the orders
        "--sweep-every",
        "1",
        modules="tests.e2e.dashflows",
        cwd=ROOT,
        WORKFLOWS_RUNNING_MARK_SECONDS="0.2",  # a running step shows in the status (and the page) soon
    )
    yield started
    started.stop(signal.SIGKILL)


@contextlib.contextmanager
def opened_page(chromium: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page in Debian's chromium, with the script errors and console errors it shows (``problems``)
    and the URLs it requests, each gathered as it goes."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox needs a user namespace that a root session or a container lacks.
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.on("request", lambda request: requests.append(request.url))
            yield page, problems, requests
        finally:
            browser.close()


def entries(dev: DevProcess, instance_id: str) -> list[Any]:
    found: list[Any] = dev.call("GET", f"/instances/{path_segment(instance_id)}/history")[1]["entries"]
    return found


def waits_in(dev: DevProcess, instance_id: str, kind: str) -> bool:
    return any(e["kind"] == kind and e["status"] == "waiting" for e in entries(dev, instance_id))


def test_the_dashboard_shows_timelines_skips_a_sleep_and_sends_events(
    dev: DevProcess, chromium: str, tmp_path: Path
) -> None:
    try:
        from playwright.sync_api import expect
    except ImportError:
        _missing("playwright")
    orders = "/workflows/dash-order/instances"
    assert dev.call("POST", orders, {"id": SLASHED, "params": {"amount": 42, "sleep": "1 hour"}})[0] == 201
    assert dev.call("POST", orders, {"id": AT, "params": {"amount": 7}})[0] == 201
    assert dev.call("POST", orders, {"id": COLON, "params": {"amount": 1, "reject": HOSTILE}})[0] == 201
    until("the instance to sleep for an hour", lambda: waits_in(dev, SLASHED, "sleep"))
    until("the instance to wait for its approval", lambda: waits_in(dev, AT, "wait"))

    with opened_page(chromium) as (page, problems, requests):
        page.goto(f"{dev.url}/ui#workflow=dash-order")
        expect(page.locator("#workflow")).to_have_value("dash-order")
        expect(page.locator('meta[name="lw-dev"]')).to_have_attribute("content", "1")  # dev's page

        # The list: the instances, by their ids; the status filter narrows it.
        row = page.locator("#instances tbody tr", has_text=SLASHED)
        expect(row.locator(".badge")).to_have_text("waiting", timeout=WAIT_MS)
        expect(page.locator("#instances tbody tr", has_text=AT).locator(".badge")).to_have_text("waiting")
        page.select_option("#status-filter", "complete")
        expect(page.locator("#instances tbody")).to_contain_text("No instances with status complete")
        page.select_option("#status-filter", "")
        row.click()

        # The timeline: three attempts of the retried step, the sleep, what the status says.
        expect(page.locator("#d-id")).to_have_text(SLASHED)
        timeline = page.locator("#d-timeline")
        charge = timeline.locator('li[data-kind="step"][data-name="charge"]')
        expect(charge.locator(".attempts li")).to_have_count(3, timeout=WAIT_MS)
        expect(charge.locator(".attempts li").nth(0)).to_contain_text(
            "ConnectionError: payment API unavailable"
        )
        expect(charge.locator(".attempts li").nth(2)).to_contain_text("ok")
        expect(charge.locator(".badge")).to_have_text("complete")
        sleep = timeline.locator('li[data-kind="sleep"][data-name="cool off"]')
        expect(sleep.locator(".badge")).to_have_text("waiting")
        expect(page.locator("#d-wait")).to_contain_text("sleep cool off, until")
        expect(page.locator("#d-counts")).to_contain_text("2 retries")

        # A result is left out of the pages read, with its size; "show" reads it.
        expect(charge.locator(".result")).to_contain_text("bytes")
        charge.locator("button.show-result").click()
        expect(charge.locator(".result")).to_contain_text('{"charged":42,"attempt":3}')

        # dev's own action: skip the hour's sleep, after a confirmation.
        skip = page.locator('button[data-action="skip"]')
        expect(skip).to_be_visible()
        skip.click()
        dialog = page.locator("#confirm")
        expect(dialog).to_contain_text("Skip this instance's wait?")
        page.click("#confirm-ok")
        expect(page.locator("#toast")).to_contain_text("Skip wait accepted")
        expect(sleep.locator(".badge")).to_have_text("complete", timeout=WAIT_MS)
        wait = timeline.locator('li[data-kind="wait"][data-name="approval"]')
        expect(wait.locator(".badge")).to_have_text("waiting", timeout=WAIT_MS)
        expect(wait).to_contain_text("for event approved, deadline")
        expect(page.locator("#d-wait")).to_contain_text("an event of type approved in approval, deadline")
        expect(charge.locator(".result")).to_contain_text('{"charged":42,"attempt":3}')  # kept
        page.screenshot(path=str(tmp_path / "dashboard-waiting.png"), full_page=True)

        # The event: a dialog to confirm, prefilled with the event type the instance waits for.
        send_event(page, expect, "ana", tmp_path / "dashboard-confirm.png")
        expect(page.locator("#d-status")).to_have_text("complete", timeout=WAIT_MS)
        expect(timeline.locator('li[data-kind="event"][data-name="approved"] .badge')).to_have_text(
            "consumed"
        )
        expect(timeline.locator('li[data-kind="step"][data-name="ship"] .badge')).to_have_text("complete")
        expect(page.locator("#d-output")).to_contain_text("shipped, approved by ana")
        expect(skip).to_be_hidden()
        expect(row.locator(".badge")).to_have_text("complete", timeout=WAIT_MS)
        page.locator("#toast").evaluate("toast => { toast.className = ''; }")  # not in the picture
        shot = tmp_path / "dashboard-timeline.png"
        page.screenshot(path=str(shot), full_page=True)

        # The other id, from the list: its one-second sleep is over; the event completes it.
        page.locator("#instances tbody tr", has_text=AT).click()
        expect(page.locator("#d-id")).to_have_text(AT)
        expect(wait.locator(".badge")).to_have_text("waiting", timeout=WAIT_MS)
        send_event(page, expect, "bo")
        expect(page.locator("#d-status")).to_have_text("complete", timeout=WAIT_MS)
        expect(page.locator("#d-output")).to_contain_text("shipped, approved by bo")

        # An error message with markup in it, opened by id: shown as text, never run.
        page.fill("#open-id", COLON)
        page.click("#open-btn")
        expect(page.locator("#d-status")).to_have_text("errored", timeout=WAIT_MS)
        expect(page.locator("#d-error")).to_contain_text(HOSTILE)
        expect(timeline.locator('li[data-name="charge"] .attempts li').nth(0)).to_contain_text(HOSTILE)
        assert page.locator("#detail img").count() == 0 and page.evaluate("window.pwned") is None

        # A step while it runs: in the status card and in the timeline, with its attempt.
        go = tmp_path / "go"
        started = {"id": "slow/1", "params": {"until": str(go)}}
        assert dev.call("POST", "/workflows/dash-slow/instances", started)[0] == 201
        page.select_option("#workflow", "dash-slow")
        page.locator("#instances tbody tr", has_text="slow/1").click(timeout=WAIT_MS)
        running = timeline.locator('li[data-running="1"][data-name="crunch"]')
        expect(running.locator(".badge")).to_have_text("running", timeout=WAIT_MS)
        expect(running.locator(".attempts li")).to_contain_text("attempt 1")
        expect(running.locator(".attempts li")).to_contain_text("running for")
        expect(page.locator("#d-running")).to_contain_text("step crunch, attempt 1, started")
        page.screenshot(path=str(tmp_path / "dashboard-running.png"), full_page=True)
        go.touch()
        expect(page.locator("#d-status")).to_have_text("complete", timeout=WAIT_MS)
        crunch = timeline.locator('li[data-kind="step"][data-name="crunch"]')
        expect(crunch.locator(".badge")).to_have_text("complete")
        expect(running).to_have_count(0)
    assert problems == []  # no script error, no Content-Security-Policy violation
    # Every instance path the page asked for held the id encoded twice; results only when asked for.
    history = [u for u in requests if "/history?" in u]
    assert any(f"/instances/{path_segment(SLASHED)}/history?" in u for u in history)
    assert any(f"/instances/{path_segment(AT)}/history?" in u for u in history)
    assert not [u for u in requests if "/instances/orders%2F" in u or "/instances/orders/" in u]
    assert len([u for u in history if "results=true" in u]) == 1
    assert f"{dev.url}/dev/instances/{path_segment(SLASHED)}/skip" in requests
    for instance_id, by in ((SLASHED, "ana"), (AT, "bo")):
        status: Any = dev.call("GET", f"/instances/{path_segment(instance_id)}")[1]
        assert status["status"] == "complete" and status["output"]["shipped"] == f"shipped, approved by {by}"
    # dev's skip route decodes as the API's routes do: encoded twice, it names the (complete) instance.
    code, answer = dev.call("POST", f"/dev/instances/{path_segment(SLASHED)}/skip")
    assert (code, answer["error"]) == (409, "InvalidStateError")
    assert dev.call("POST", "/dev/instances/ana%40example.com/skip")[0] == 409
    assert dev.call("POST", "/dev/instances/orders%2F2024%2F7/skip")[0] == 404  # "/" a separator: no route
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def send_event(page: Any, expect: Any, by: str, shot: Path | None = None) -> None:
    """Send the ``approved`` event with ``{"by": by}`` through the page's confirmed action."""
    page.click('button[data-action="event"]')
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#event-type")).to_have_value("approved")
    page.fill("#event-payload", f'{{"by": "{by}"}}')
    if shot is not None:
        page.screenshot(path=str(shot))
    page.click("#confirm-ok")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toast")).to_contain_text("Event sent")


def test_the_dashboard_pages_through_a_long_history(dev: DevProcess, chromium: str) -> None:
    """At 2 entries a page (``?history_page=2``), the page follows 10 cursors, then "load more" goes on
    from the last one; a refresh keeps what was loaded; a result on a later page is read from that page."""
    try:
        from playwright.sync_api import expect
    except ImportError:
        _missing("playwright")
    assert (
        dev.call("POST", "/workflows/dash-many/instances", {"id": "many/1", "params": {"count": 25}})[0]
        == 201
    )
    until(
        "the 25 steps",
        lambda: dev.call("GET", f"/instances/{path_segment('many/1')}")[1]["status"] == "complete",
    )
    with opened_page(chromium) as (page, problems, requests):
        page.goto(f"{dev.url}/ui?history_page=2#workflow=dash-many&instance=many%2F1")
        entries = page.locator("#d-timeline li.entry")
        expect(entries).to_have_count(20, timeout=WAIT_MS)
        expect(page.locator("#load-more")).to_have_text("20 entries shown: load more")
        page.click("#load-more")
        expect(entries).to_have_count(25)
        expect(page.locator("#load-more")).to_have_count(0)
        expect(entries.nth(24)).to_contain_text("part 24")
        page.click("#refresh")
        expect(entries).to_have_count(25)
        last = page.locator('#d-timeline li[data-name="part 24"]')
        last.locator("button.show-result").click()
        expect(last.locator(".result")).to_contain_text("result 576")
    assert problems == []
    history = [u for u in requests if "/history?" in u]
    assert history and all("limit=2" in u for u in history)
    (with_results,) = [u for u in history if "results=true" in u]
    assert "cursor=" in with_results  # part 24's page, not the first
