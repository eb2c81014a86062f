"""Child workflows (``step.invoke``): what a child costs beyond an instance of its own, counted exactly.

One async parent invokes ``CHILDREN`` children at once, each a 2-step chain; the baseline creates the same
children with the client, with no parent. The difference, per child, is the price of the parent link:
the invoke's journal entry, the report (an event for the parent), the parent's wake-ups and its replays.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from bench.counts import WORKER, ops, per_instance
from bench.report import Check, Section
from bench.workload import READS, observe
from framework.api.registry import Workflow
from framework.local import LocalRuntime

CHILDREN = 10
PARENT, CHILD = "bench-parent", "bench-child"


def _child(event: Any, step: Any) -> int:
    step.do("one", lambda: 1)
    return int(step.do("two", lambda: event.payload["n"]))


async def _parent(event: Any, step: Any) -> int:
    outputs = await asyncio.gather(
        *(step.invoke(f"child {n}", CHILD, params={"n": n}) for n in range(event.payload["children"]))
    )
    return sum(outputs)


WORKFLOWS = [Workflow(name=PARENT, fn=_parent), Workflow(name=CHILD, fn=_child)]


def _run(with_parent: bool) -> tuple[Counter[str], int, list[Any]]:
    """All AWS calls of the run (create included), its worker invocations, and its deliveries."""
    with LocalRuntime(workflows=WORKFLOWS) as rt:
        before = rt.aws_calls.copy()
        with observe(rt) as deliveries:
            if with_parent:
                rt.client.create(PARENT, {"children": CHILDREN}, id="bench-parent")
            else:
                for n in range(CHILDREN):
                    rt.client.create(CHILD, {"n": n}, id=f"bench-child-{n}")
            rt.run_until_idle()
        if with_parent and rt.client.get("bench-parent").status().output != sum(range(CHILDREN)):
            raise RuntimeError("the parent did not join its children")
        return rt.aws_calls - before, rt.invocations[WORKER], list(deliveries)


def _db(calls: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in calls.items() if op.startswith("dynamodb.") and n})


def _sent(calls: Counter[str]) -> int:
    return calls["sqs.SendMessage"] + calls["sqs.SendMessageBatch"]


def children_section() -> Section:
    calls, invocations, deliveries = _run(with_parent=True)
    base_calls, base_invocations, _ = _run(with_parent=False)
    extra_db = (sum(_db(calls).values()) - sum(_db(base_calls).values())) / CHILDREN
    extra_sent = (_sent(calls) - _sent(base_calls)) / CHILDREN
    last = next((d for d in reversed(deliveries) if d.outcome == "completed"), None)  # the parent's
    join_reads = 0 if last is None else sum(n for op, n in last.calls.items() if op in READS)
    checks = [
        Check(
            "DynamoDB calls per child beyond an instance of its own",
            round(extra_db, 2),
            note=f"with a parent: {per_instance(_db(calls), CHILDREN)} per child (parent's calls included); "
            f"alone: {per_instance(_db(base_calls), CHILDREN)}",
        ),
        Check(
            "SQS messages per child beyond an instance of its own",
            round(extra_sent, 2),
            note="the report's kick of the parent; kicks that find the parent running are merged",
        ),
        Check(
            "worker invocations per child beyond an instance of its own",
            round((invocations - base_invocations) / CHILDREN, 2),
            note=f"{invocations} with the parent, {base_invocations} for the children alone",
        ),
        Check(
            f"DynamoDB reads of the parent's last invocation (the join of {CHILDREN} children)",
            join_reads,
            note="" if last is None else f"it made: {ops(last.calls)}",
        ),
    ]
    return Section(
        f"10. Child workflows: one async parent invokes {CHILDREN} 2-step children at once (virtual clock)",
        checks,
        {"with_parent": dict(calls), "children_alone": dict(base_calls)},
    )
