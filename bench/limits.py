"""Concurrency limits: SQS messages and invocations per instance that waits for a slot, and the DynamoDB
calls a limit adds to each invocation.

- Waiting: 200 instances of a one-step workflow with ``concurrency=10``, every message delivered on 16
  threads at once, on the in-memory store and queue (each store method is one DynamoDB call on AWS,
  framework/backends/dynamodb_limits.py), on the virtual clock. Counted, not timed.
- Per invocation: one instance of a one-step workflow on LocalRuntime (moto, botocore hooks), with and
  without ``concurrency=10``; the difference is what the limit costs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.report import Check, Section
from framework import workflow
from framework.api.registry import Registry
from framework.backends.blobs import MemoryBlobs
from framework.backends.environment import Environment, Settings
from framework.backends.memory import MemoryStore
from framework.backends.queue import MemoryQueue
from framework.core.clock import VirtualClock
from framework.engine.ending import Outcome
from framework.engine.invocation import process_message
from framework.local import LocalRuntime
from framework.manage.client import WorkflowClient

INSTANCES = 200
CONCURRENCY = 10
THREADS = 16


class _Counted(MemoryStore):
    """The fake store, counting calls by method."""

    def __init__(self) -> None:
        super().__init__()
        self.by_method: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if callable(attr) and not name.startswith("_") and name != "by_method":
            with super().__getattribute__("_count_lock"):
                super().__getattribute__("by_method")[name] += 1
        return attr


def _flow(name: str, **limits: Any) -> Any:
    @workflow(name, **limits)
    def flow(event: Any, step: Any) -> Any:
        return step.do("work", lambda: time.sleep(0.002) or 1)

    return flow


def waiting() -> dict[str, Any]:
    """Run INSTANCES on THREADS threads; return the counts."""
    clock = VirtualClock(start=1_700_000_000.0)
    store, queue = _Counted(), MemoryQueue(clock)
    sent = Counter[str]()
    send = queue.send

    def counting(body: str, delay: int = 0) -> None:
        sent["messages"] += 1
        send(body, delay)

    queue.send = counting  # type: ignore[method-assign]
    env = Environment(
        store=store,
        queue=queue,
        clock=clock,
        registry=Registry([_flow("limited", concurrency=CONCURRENCY)]),
        blobs=MemoryBlobs(),
        settings=Settings(),
    )
    client = WorkflowClient(environment=env)
    for i in range(INSTANCES):
        client.create("limited", id=f"w{i}")
    created = sent["messages"]
    outcomes: Counter[Outcome] = Counter()
    with ThreadPoolExecutor(THREADS) as pool:
        while batch := queue.due():
            outcomes.update(pool.map(lambda b: process_message(b, None, env), batch))
    done = sum(client.get(f"w{i}").status().status == "complete" for i in range(INSTANCES))
    if done != INSTANCES:
        raise RuntimeError(f"only {done} of {INSTANCES} completed")
    return {
        "invocations": sum(outcomes.values()),
        "queued": outcomes[Outcome.QUEUED],
        "messages": sent["messages"] - created,
        "outcomes": {k.value: v for k, v in outcomes.items()},
        "limiter_calls": {
            m: n
            for m, n in store.by_method.items()
            if m in ("get_limiter", "put_limiter", "add_waiter", "oldest_waiters", "take_waiter")
        },
    }


def per_invocation() -> dict[str, int]:
    """DynamoDB calls of one one-step instance's run, unlimited and limited."""
    found = {}
    for name, limits in (("free", {}), ("capped", {"concurrency": CONCURRENCY})):
        with LocalRuntime(workflows=[_flow(name, **limits)]) as rt:
            inst = rt.client.create(name, id="one")
            before = rt.aws_calls.copy()
            rt.run_until_idle()
            calls = rt.aws_calls - before
            if inst.status().status != "complete":
                raise RuntimeError(f"{name} did not complete")
            found[name] = sum(n for op, n in calls.items() if op.startswith("dynamodb."))
    return found


def limits_section() -> Section:
    wait = waiting()
    calls = per_invocation()
    waiters = max(wait["queued"], 1)
    extra = calls["capped"] - calls["free"]
    checks = [
        Check("invocations per instance (200 instances, concurrency 10)", wait["invocations"] / INSTANCES),
        Check(
            "SQS messages per instance that waited for a slot (wake-ups, not counting the start)",
            round(wait["messages"] / waiters, 2),
            target="<= 2 (no polling)",
            passed=wait["messages"] / waiters <= 2,
        ),
        Check(
            "invocations per instance that waited for a slot",
            round((wait["invocations"] - INSTANCES) / waiters + 1, 2),
            target="<= 3",
            passed=(wait["invocations"] - INSTANCES) / waiters + 1 <= 3,
        ),
        Check(
            "extra DynamoDB calls per invocation of a limited workflow (no contention)",
            extra,
            target="<= 5",
            passed=extra <= 5,
        ),
        Check("DynamoDB calls per invocation, no limits (unchanged)", calls["free"]),
    ]
    return Section("Concurrency limits: waiting for a slot", checks=checks, data=wait | {"calls": calls})
