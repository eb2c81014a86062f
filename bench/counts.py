"""Counted AWS calls of one instance on LocalRuntime: a chain with no sleeps, and one with a 1-hour sleep."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.report import Check, Section
from bench.workload import CHAIN, Delivery, chain, observe
from framework.durations import parse_duration
from framework.local import LocalRuntime
from framework.queue import MAX_DELAY_SECONDS

WORKER = "WorkerFunction"  # the worker's logical id in template.yaml
SLEEP = "1 hour"


@dataclass(frozen=True)
class ChainRun:
    """The calls of one instance: those ``rt.client.create`` made, and all counted after it returned
    (the worker's, plus the event source mapping's ReceiveMessage and DeleteMessageBatch)."""

    steps: int
    create: Counter[str]
    after: Counter[str]
    deliveries: list[Delivery]
    invocations: Counter[str]

    def worker_dynamodb(self) -> Counter[str]:
        """DynamoDB calls made while the worker handled messages."""
        total: Counter[str] = Counter()
        for d in self.deliveries:
            total += Counter({op: n for op, n in d.calls.items() if op.startswith("dynamodb.")})
        return total


def run_chain(steps: int, **params: Any) -> ChainRun:
    """Create one instance on a fresh LocalRuntime and run it to the end."""
    with LocalRuntime(workflows=[chain]) as rt:
        before = rt.aws_calls.copy()
        inst = rt.client.create(CHAIN, {"steps": steps, **params}, id="bench-0")
        create = rt.aws_calls - before
        mark = rt.aws_calls.copy()
        with observe(rt) as deliveries:
            rt.run_until_idle()
        after = rt.aws_calls - mark
        if not deliveries:
            raise RuntimeError("no message reached handlers.worker.process_message: the recorder is stale")
        status = inst.status()  # read after counting
        if status.status != "complete":
            raise RuntimeError(f"{steps}-step chain ended {status.status}: {status.error}")
        return ChainRun(steps, create, after, deliveries, Counter(rt.invocations))


def ops(calls: Counter[str]) -> str:
    """``{"dynamodb.PutItem": 10}`` as ``"PutItem x10"``, sorted."""
    return ", ".join(f"{op.split('.', 1)[1]} x{n}" for op, n in sorted(calls.items())) or "none"


def chain_section() -> Section:
    runs = {n: run_chain(n) for n in (10, 20, 100)}
    r10 = runs[10]
    worker = {n: r.worker_dynamodb() for n, r in runs.items()}
    total = {n: sum(c.values()) for n, c in worker.items()}
    create_db = r10.create["dynamodb.PutItem"]
    reads = {n: c["dynamodb.Query"] + c["dynamodb.GetItem"] for n, c in worker.items()}
    sends = r10.create["sqs.SendMessage"] + r10.after["sqs.SendMessage"]
    mapping = Counter({op: r10.after[op] for op in ("sqs.ReceiveMessage", "sqs.DeleteMessageBatch")})
    everything = sum(n for op, n in r10.after.items() if op.startswith("dynamodb."))
    checks = [
        Check(
            "worker DynamoDB calls per step (10 steps)",
            total[10] / 10,
            "<= 1.2",
            total[10] / 10 <= 1.2,
            f"{total[10]} calls while the worker handled the message: {ops(worker[10])} "
            f"({everything} DynamoDB calls after create in all)",
        ),
        Check(
            "DynamoDB calls per step, the create's PutItem included",
            (total[10] + create_db) / 10,
            note=f"{total[10]} worker calls + {create_db} PutItem by rt.client.create",
        ),
    ]
    for longer in (20, 100):
        marginal = (total[longer] - total[10]) / (longer - 10)
        checks.append(
            Check(
                f"marginal worker DynamoDB calls per step, 10 -> {longer} steps",
                marginal,
                "<= 1.05",
                marginal <= 1.05,
                f"({total[longer]} - {total[10]}) / {longer - 10}; {longer} steps: {ops(worker[longer])}",
            )
        )
    checks += [
        Check(
            "worker Query + GetItem calls (10, 20 and 100 steps)",
            sum(reads.values()),
            "= 0",
            sum(reads.values()) == 0,
            "per run: " + ", ".join(f"{n} steps: {r}" for n, r in reads.items()),
        ),
        Check(
            "SQS SendMessage, the create's included",
            sends,
            "= 1 (the start)",
            sends == 1,
            f"create: {r10.create['sqs.SendMessage']}, after create: {r10.after['sqs.SendMessage']}",
        ),
        Check(
            "worker invocations",
            r10.invocations[WORKER],
            "= 1",
            r10.invocations[WORKER] == 1,
            f"all invocations: {dict(r10.invocations)}",
        ),
        Check(
            "SQS calls by LocalRuntime's poller (event source mapping)",
            sum(mapping.values()),
            note=f"{ops(mapping)}; the last receive finds the queue empty",
        ),
    ]
    data = {n: {"create": dict(r.create), "after_create": dict(r.after)} for n, r in runs.items()}
    return Section(
        "1. One instance of an N-step chain, no sleeps (calls counted after rt.client.create unless noted)",
        checks,
        {"calls": data},
    )


def sleep_section() -> Section:
    run = run_chain(10, sleep_after=5, sleep=SLEEP)
    hops = [d for d in run.deliveries if d.outcome == "hopped"]
    hop_db = sum(d.dynamodb() for d in hops)
    suspends = [d for d in run.deliveries if d.outcome == "suspended"]
    resumes = [d for d in run.deliveries if d.outcome == "completed"]
    resume = resumes[-1].calls if resumes else Counter()
    pages = resume["dynamodb.Query"]
    expected = math.ceil(parse_duration(SLEEP) / MAX_DELAY_SECONDS)
    sends = run.after["sqs.SendMessage"]
    sweeps = run.invocations.get("SweeperFunction", 0)
    checks = [
        Check(
            "SQS messages sent for the sleep",
            sends,
            f"<= 2 (a hop chain: ceil({parse_duration(SLEEP):.0f}/{MAX_DELAY_SECONDS}) = {expected})",
            sends <= 2,
            "all SendMessage after create: the sleep is parked; the sweeper sends its one wake-up",
        ),
        Check(
            f"early hops ({len(hops)}), and DynamoDB calls in them",
            hop_db,
            "= 0",
            hop_db == 0,
            f"{len(hops)} hops; {sweeps} sweeper run(s) (its Query per shard is shared by every instance)",
        ),
        Check(
            "journal reads on resume (Query pages)",
            pages,
            "= 1",
            pages == 1 and resume["dynamodb.GetItem"] == 0,
            f"the resuming invocation made: {ops(resume)}",
        ),
        Check(
            "worker invocations",
            run.invocations[WORKER],
            note=f"{len(suspends)} to sleep + {len(hops)} hops + {len(resumes)} to resume "
            + "(cost-model.md's one-hop floor: 2); calls per message: "
            + ", ".join(f"{d.outcome} {sum(d.calls.values())}" for d in run.deliveries),
        ),
    ]
    deliveries = [{"outcome": d.outcome, "calls": dict(d.calls)} for d in run.deliveries]
    return Section(
        f"2. One 10-step chain with step.sleep('nap', {SLEEP!r}) after step 5 (virtual clock)",
        checks,
        {"calls": {"create": dict(run.create), "after_create": dict(run.after)}, "deliveries": deliveries},
    )
