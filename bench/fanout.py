"""Fan-out (``step.map`` over a workflow): a 1,000-item map at max_concurrency 10 and 100, counted
exactly, on LocalRuntime's virtual clock; and a 5,000-item map at 100 run to completion.

Each item is a one-step child workflow. The baseline creates the same 1,000 items as instances of their
own with the client, with no parent: the difference per item is the price of the map (the parent's
folds, the children's reports, the parent link). Wall time is the virtual clock's (the steps take no
time of their own); the parent's replay after the join is its last invocation, which wakes from a sleep
after the map: its AWS calls must not grow with the items.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.counts import WORKER
from bench.report import Check, Section
from bench.workload import READS, Delivery, observe
from framework.api.registry import Workflow
from framework.local import LocalRuntime

ITEMS = 1_000
SCALE_ITEMS = 5_000
CONCURRENCY = (10, 100)
PARENT, ITEM = "bench-map", "bench-item"


ITEM_SECONDS = 10  # each item waits this long (a sleep), so that concurrency shows in the wall time
AFTER_SECONDS = 60


def _item(event: Any, step: Any) -> int:
    value = int(step.do("work", lambda: event.payload["i"] * 2))
    step.sleep("wait", ITEM_SECONDS)
    return value


def _parent(event: Any, step: Any) -> int:
    items = [{"i": i} for i in range(event.payload["items"])]
    batch = step.map("items", items, ITEM, max_concurrency=event.payload["concurrency"])
    step.sleep("after", AFTER_SECONDS)  # the next invocation replays past the join
    return len(batch.get_results())


WORKFLOWS = [Workflow(name=PARENT, fn=_parent), Workflow(name=ITEM, fn=_item)]


def run_map(items: int, concurrency: int | None) -> dict[str, Any]:
    """One run: the map (or, with ``concurrency`` None, the items as instances of their own). Its AWS
    calls, worker invocations, deliveries, the virtual seconds it took, and the parent's last delivery."""
    with LocalRuntime(workflows=WORKFLOWS) as rt:
        start, before = rt.clock.now(), rt.aws_calls.copy()
        with observe(rt) as deliveries:
            if concurrency is None:
                for i in range(items):
                    rt.client.create(ITEM, {"i": i}, id=f"item-{i}")
            else:
                rt.client.create(PARENT, {"items": items, "concurrency": concurrency}, id="parent")
            rt.run_until_idle()
        if concurrency is not None and rt.client.get("parent").status().output != items:
            raise RuntimeError(f"the {items}-item map did not complete")
        # The parent ends last: its sleep after the map outlasts every child.
        last = next((d for d in reversed(deliveries) if d.outcome == "completed"), None)
        return {
            "calls": rt.aws_calls - before,
            "invocations": rt.invocations[WORKER],
            "deliveries": len(deliveries),
            "seconds": rt.clock.now() - start - (AFTER_SECONDS if concurrency is not None else 0),
            "last": last,
        }


def db(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op.startswith("dynamodb."))


def sent(calls: Counter[str]) -> int:
    return calls["sqs.SendMessage"] + calls["sqs.SendMessageBatch"]


def map_checks(items: int, concurrency: int, run: dict[str, Any], base: dict[str, Any]) -> list[Check]:
    """The figures of one map run against the baseline's."""
    last: Delivery | None = run["last"]
    reads = 0 if last is None else sum(n for op, n in last.calls.items() if op in READS)
    replay = 0 if last is None else db(last.calls)
    at = f"max_concurrency {concurrency}"
    return [
        Check(
            f"{at}: virtual seconds to run the map",
            round(run["seconds"], 1),
            note=f"each item sleeps {ITEM_SECONDS} s: {items} items, {concurrency} at once, take at least "
            f"{items * ITEM_SECONDS // concurrency} s",
        ),
        Check(
            f"{at}: worker invocations per item",
            round(run["invocations"] / items, 3),
            note=f"{run['invocations']} (SQS batches of up to 10 messages); {run['deliveries']} messages "
            f"handled; the items alone: {base['invocations']}",
        ),
        Check(
            f"{at}: DynamoDB calls per item",
            round(db(run["calls"]) / items, 2),
            note=f"the items as instances of their own: {round(db(base['calls']) / items, 2)}",
        ),
        Check(
            f"{at}: SQS messages sent per item",
            round(sent(run["calls"]) / items, 2),
            note=f"the items alone: {round(sent(base['calls']) / items, 2)}",
        ),
        Check(
            f"{at}: DynamoDB reads of the parent's replay after the join",
            reads,
            note=f"{replay} DynamoDB calls in all; the same for any number of items: the map is one "
            "entry (the journal read is 0 when the worker's cache holds it, 1 otherwise)",
        ),
    ]


def fanout_section(items: int = ITEMS, scale_items: int = SCALE_ITEMS) -> Section:
    base = run_map(items, None)
    checks: list[Check] = []
    data: dict[str, Any] = {"items_alone": dict(base["calls"])}
    for concurrency in CONCURRENCY:
        run = run_map(items, concurrency)
        checks += map_checks(items, concurrency, run, base)
        data[f"concurrency_{concurrency}"] = dict(run["calls"])
    if scale_items:
        scale = run_map(scale_items, 100)
        checks.append(
            Check(
                f"{scale_items}-item map at max_concurrency 100: items per worker invocation",
                round(scale_items / scale["invocations"], 1),
                note=f"completed in {round(scale['seconds'], 1)} virtual seconds, "
                f"{round(db(scale['calls']) / scale_items, 2)} DynamoDB calls per item",
            )
        )
        data["scale"] = dict(scale["calls"])
    return Section(
        f"11. Fan-out: a {items}-item map over a one-step workflow, each item a child instance "
        "(virtual clock)",
        checks,
        data,
    )
