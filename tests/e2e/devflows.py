"""Workflows for the `workflows dev` tests, loaded with ``--modules tests.e2e.devflows`` (module level, so
that dev's worker processes import them too)."""

from __future__ import annotations

import time
from typing import Any

from framework import WorkflowTimeoutError, workflow


@workflow("dev-order")
def order(event: Any, step: Any) -> dict[str, Any]:
    """A step, a durable sleep (an SQS delay in real time), an event wait, a step."""
    reserved = step.do("reserve", lambda: f"reserved {event.payload['item']}")
    step.sleep("nap", "1 second")
    confirmation = step.wait_for_event("confirm", "confirm", timeout="1 hour")
    shipped = step.do("ship", lambda: f"shipped to {confirmation.payload['to']}")
    return {"reserved": reserved, "shipped": shipped}


def _slow(i: int) -> int:
    time.sleep(1)  # long enough to kill the dev process while a body runs
    return i


@workflow("dev-slow")
def slow(event: Any, step: Any) -> dict[str, Any]:
    """Steps that take a second each."""
    total = 0
    for i in range(int(event.payload.get("steps", 6))):
        total += step.do(f"step {i}", lambda i=i: _slow(i))
    return {"total": total}


@workflow("dev-square")
def square(event: Any, step: Any) -> dict[str, int]:
    """One item of ``dev-fanout``: one step."""
    i = int(event.payload["i"])
    return {"square": step.do("square", lambda: i * i)}


@workflow("dev-fanout")
def fanout(event: Any, step: Any) -> dict[str, int]:
    """A map of ``items`` items over ``dev-square``, each a child instance, ``concurrency`` at once."""
    items = [{"i": i} for i in range(int(event.payload["items"]))]
    batch = step.map("squares", items, "dev-square", max_concurrency=int(event.payload["concurrency"]))
    return {"succeeded": batch.success_count, "sum": sum(r["square"] for r in batch.get_results())}


def _fails_first(ctx: Any) -> int:
    if ctx.attempt < 2:
        raise ConnectionError("the first attempt fails")
    return int(ctx.attempt)


@workflow("dev-long")
def long_waits(event: Any, step: Any) -> dict[str, Any]:
    """Waits that take hours and days on the real clock: a sleep, an event's timeout, a retry's delay."""
    step.do("begin", lambda: "begun")
    step.sleep("two hours", "2 hours")
    try:
        timeout = (event.payload or {}).get("timeout", "3 days")
        approval = step.wait_for_event("approval", "approve", timeout=timeout).payload
    except WorkflowTimeoutError:
        approval = "timed out"
    attempt = step.do("flaky", _fails_first, config={"retries": {"limit": 2, "delay": "1 hour"}})
    return {"approval": approval, "attempt": attempt}


@workflow("dev-upload", trigger={"s3": {"bucket": "uploads", "prefix": "in/"}})
def upload(event: Any, step: Any) -> dict[str, Any]:
    """Started by an object put under ``in/`` in dev's uploads bucket."""
    return step.do("note", lambda: {"key": event.payload["key"], "size": event.payload["size"]})


@workflow("dev-ordered", trigger={"eventbridge": {"source": ["dev.shop"], "detail-type": ["OrderPlaced"]}})
def ordered(event: Any, step: Any) -> Any:
    """Started by an OrderPlaced event put on dev's bus."""
    return step.do("note", lambda: event.payload["detail"]["order"])
