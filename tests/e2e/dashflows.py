"""The workflow of the dashboard's browser test (``tests/e2e/test_dashboard.py``), loaded by ``workflows
dev`` with ``--modules tests.e2e.dashflows`` (module level, so that dev's worker processes import it)."""

from __future__ import annotations

from typing import Any

from framework import NonRetryableError, workflow


@workflow("dash-order")
def order(event: Any, step: Any) -> dict[str, Any]:
    """A step that fails twice and then succeeds (or fails for good at once with ``reject`` as its
    message), a durable sleep, a wait for an approval, a step."""

    @step.do("charge", config={"retries": {"limit": 3, "delay": "1 second", "backoff": "constant"}})
    def charge(ctx: Any) -> dict[str, Any]:
        if "reject" in event.payload:
            raise NonRetryableError(event.payload["reject"])
        if ctx.attempt < 3:
            raise ConnectionError("payment API unavailable")
        return {"charged": event.payload["amount"], "attempt": ctx.attempt}

    receipt = charge()
    step.sleep("cool off", "1 second")
    approval = step.wait_for_event("approval", "approved", timeout="1 hour")
    shipped = step.do("ship", lambda: f"shipped, approved by {approval.payload['by']}")
    return {"receipt": receipt, "shipped": shipped}
