"""The workflows of the dashboard's browser test (``tests/e2e/test_dashboard.py``), loaded by ``workflows
dev`` with ``--modules tests.e2e.dashflows`` (module level, so that dev's worker processes import it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from framework import NonRetryableError, workflow

STEP_SECONDS = 60.0  # the longest the slow step waits for its file; the test creates it in seconds


@workflow("dash-order")
def order(event: Any, step: Any) -> dict[str, Any]:
    """A step that fails twice and then succeeds (or fails for good at once with ``reject`` as its
    message), a durable sleep (``sleep``, 1 second unless given), a wait for an approval, a step."""

    @step.do("charge", config={"retries": {"limit": 3, "delay": "1 second", "backoff": "constant"}})
    def charge(ctx: Any) -> dict[str, Any]:
        if "reject" in event.payload:
            raise NonRetryableError(event.payload["reject"])
        if ctx.attempt < 3:
            raise ConnectionError("payment API unavailable")
        return {"charged": event.payload["amount"], "attempt": ctx.attempt}

    receipt = charge()
    step.sleep("cool off", event.payload.get("sleep", "1 second"))
    approval = step.wait_for_event("approval", "approved", timeout="1 hour")
    shipped = step.do("ship", lambda: f"shipped, approved by {approval.payload['by']}")
    return {"receipt": receipt, "shipped": shipped}


@workflow("dash-slow")
def slow(event: Any, step: Any) -> dict[str, Any]:
    """A step that runs until the file ``until`` exists (the test creates it once it has seen the step
    running), so that it runs for as long as the test needs and no longer."""

    @step.do("crunch", config={"retries": {"limit": 0}, "timeout": "2 minutes"})
    def crunch() -> dict[str, Any]:
        deadline = time.monotonic() + STEP_SECONDS
        while not Path(event.payload["until"]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return {"crunched": Path(event.payload["until"]).exists()}

    return crunch()


@workflow("dash-many")
def many(event: Any, step: Any) -> list[int]:
    """``count`` short steps in a row: a history of many pages at a small page size."""
    return [step.do(f"part {i}", _square(i)) for i in range(event.payload["count"])]


def _square(n: int) -> Callable[[], int]:
    return lambda: n * n
