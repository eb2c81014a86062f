"""Workflows shared by the integration tests (module level, so worker processes can import them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from framework import StepContext, workflow

BODY_RUNS: dict[str, int] = {}


def _count(key: str) -> None:
    BODY_RUNS[key] = BODY_RUNS.get(key, 0) + 1


@workflow("it-chain")
def chain(event: Any, step: Any) -> Any:
    n = int(event.payload.get("steps", 10))
    total = 0
    for i in range(n):
        total += step.do(f"step {i}", lambda i=i: i)
    return {"total": total}


@workflow("it-sleepy")
def sleepy(event: Any, step: Any) -> Any:
    total = 0
    for i in range(10):
        total += step.do(f"step {i}", lambda i=i: i)
        if i == 4:
            step.sleep("nap", event.payload.get("sleep", "1 hour"))
    return {"total": total}


@workflow("it-mixed")
def mixed(event: Any, step: Any) -> Any:
    """Steps, a retried step, a sleep: the workflow used for crash tests."""
    key = event.instance_id
    a = step.do("a", lambda: _count(f"{key}:a") or 1)

    @step.do("flaky", config={"retries": {"limit": 3, "delay": "5 seconds", "backoff": "constant"}})
    def flaky(ctx: StepContext) -> int:
        _count(f"{key}:flaky")
        if ctx.attempt < 2:
            raise ConnectionError("try again")
        return 2

    b = flaky()
    step.sleep("nap", "20 minutes")
    c = step.do("c", lambda: _count(f"{key}:c") or 3)
    return {"sum": a + b + c}


@workflow("it-quick-mixed")
def quick_mixed(event: Any, step: Any) -> Any:
    """it-mixed on a real clock's scale: a retried step and a sleep of 2 seconds each (waits of a
    second or more go through SQS)."""
    a = step.do("a", lambda: 1)

    @step.do("flaky", config={"retries": {"limit": 3, "delay": "2 seconds", "backoff": "constant"}})
    def flaky(ctx: StepContext) -> int:
        if ctx.attempt < 2:
            raise ConnectionError("try again")
        return 2

    b = flaky()
    step.sleep("nap", "2 seconds")
    return {"sum": a + b + step.do("c", lambda: 3)}


class Order(BaseModel):
    sku: str
    quantity: int


@workflow("it-typed", params=Order)
def typed(event: Any, step: Any) -> Any:
    order: Order = event.payload
    return step.do("price", lambda: {"sku": order.sku, "total": order.quantity * 3})


@workflow("it-big")
def big(event: Any, step: Any) -> Any:
    blob = step.do("big", lambda: "z" * 500_000)
    step.sleep("nap", 10)
    return len(step.do("echo", lambda: blob))


@workflow("it-stamp")
def stamp(event: Any, step: Any) -> Any:
    return event.timestamp.timestamp()


@workflow("it-approval")
def approval(event: Any, step: Any) -> Any:
    from framework import WorkflowTimeoutError

    step.do("ask", lambda: "asked")
    try:
        decision = step.wait_for_event("approval", "approved", timeout="1 day")
    except WorkflowTimeoutError:
        return {"by": None, "escalated": True}
    return {"by": decision.payload["by"] if decision.payload else None, "escalated": False}


@workflow("it-charge")
def charge(event: Any, step: Any) -> Any:
    """Charges ``amount`` (a large result when ``big``: it goes to S3), then waits for an approval."""
    amount, big = event.payload["amount"], event.payload.get("big", False)
    charged = step.do("charge", lambda: {"charged": amount, "pad": "p" * (400_000 if big else 0)})
    approval = step.wait_for_event("approval", "approved", timeout="1 hour")
    return {"charged": charged["charged"], "by": approval.payload["by"]}


@workflow("it-swallower")
def swallower(event: Any, step: Any) -> Any:
    """Catches every Exception around its durable calls: an engine failure must get past it."""
    try:
        step.do("first", lambda: 1)
        step.do("second", lambda: 2)
    except Exception:
        return {"swallowed": True}
    return {"swallowed": False}


CALLBACK_IDS: dict[str, str] = {}  # instance id -> the id its callback handed out last


@workflow("it-callback")
def callback(event: Any, step: Any) -> Any:
    """Waits for a callback whose id the submit step hands out (here: to CALLBACK_IDS)."""

    def submit(callback_id: str, ctx: StepContext) -> None:
        CALLBACK_IDS[ctx.instance_id] = callback_id

    timeout = event.payload.get("timeout", "1 hour") if event.payload else "1 hour"
    beat = event.payload.get("heartbeat") if event.payload else None
    return step.wait_for_callback("payment", submit, timeout=timeout, heartbeat_timeout=beat)


@workflow("it-refundable")
def refundable(event: Any, step: Any) -> Any:
    """A charge with an undo (its refund, recorded as a step of its own), then a long sleep."""

    @step.with_rollback("charge")
    def charge() -> int:
        return 30

    @charge.undo
    def refund(err: Any, output: int) -> dict[str, Any]:
        return {"refunded": output, "because": type(err).__name__}

    charge()
    step.sleep("ship", "1 day")
    return {"shipped": True}


def _bodies_at_once(key: str) -> None:
    """Count the step bodies running at once across worker processes, overall and per key, in a file
    under ``LIMIT_COUNTER`` (locked): the most seen is kept in it."""
    import fcntl
    import json
    import os
    import time
    from pathlib import Path

    path = Path(os.environ["LIMIT_COUNTER"])

    def change(delta: int) -> None:
        with path.open("a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            data = json.loads(f.read() or "{}")
            for k in (key, "*"):
                data[k] = data.get(k, 0) + delta
                data[f"max {k}"] = max(data.get(f"max {k}", 0), data[k])
            f.seek(0)
            f.truncate()
            f.write(json.dumps(data))

    change(1)
    time.sleep(0.01)
    change(-1)


@workflow("it-limited", concurrency=2, key=lambda params: params["customer"])
def limited(event: Any, step: Any) -> Any:
    step.do("work", lambda: _bodies_at_once(event.payload["customer"]))
    return {"total": 0}
