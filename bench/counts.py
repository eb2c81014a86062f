"""Counted AWS calls on LocalRuntime: the chain's counted checks (from bench.throughput's timed runs), and
one instance of a chain with a 1-hour sleep."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.report import Check, Section
from bench.workload import CHAIN, READS, Delivery, chain, observe
from framework.backends.queue import MAX_DELAY_SECONDS
from framework.core.durations import parse_duration
from framework.local import LocalRuntime

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


def per_instance(calls: Counter[str], n: int) -> str:
    """Calls per instance, as ``"PutItem x11, UpdateItem x2"``, sorted."""
    return ", ".join(f"{op.split('.', 1)[1]} x{count / n:g}" for op, count in sorted(calls.items()) if count)


def _dynamodb(calls: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in calls.items() if op.startswith("dynamodb.") and n})


def chain_count_checks(label: str, runs: list[Any], floors: list[Any], *, calls_target: bool) -> list[Check]:
    """The counted figures of one chain size, from its timed runs (``bench.throughput.FrameworkRun`` and
    ``FloorRun``). Counts can differ between runs: the engine looks for pause or terminate (a GetItem)
    once per ``control_check_seconds`` of running time, so a slow run makes more. Each figure is the
    worst run's, and the note says when runs differed."""
    n, steps = runs[0].instances, runs[0].steps
    floor = floors[0]
    floor_db = _dynamodb(floor.calls)
    floor_per_step = sum(floor_db.values()) / (n * steps)

    def db_calls(run: Any) -> int:
        return sum(_dynamodb(run.total).values())

    worst = max(runs, key=db_calls)
    per_step = [db_calls(r) / (n * steps) for r in runs]
    worker = sum((d.calls for d in worst.deliveries), Counter())
    calls_note = (
        f"{db_calls(worst) / n:g} per instance, the floor {sum(floor_db.values()) / n:g} "
        f"({floor_per_step:.2f} a step). Ours: create {per_instance(_dynamodb(worst.create), n)}; worker "
        f"{per_instance(_dynamodb(worker), n)}. Floor: {per_instance(floor_db, n)}"
    )
    if len(set(per_step)) > 1:
        calls_note += "; runs differed: " + ", ".join(f"{v:.3f}" for v in per_step)
    target_calls = 1.1
    run_reads = [
        sum(
            (Counter({op: c for op, c in d.calls.items() if op in READS and c}) for d in r.deliveries),
            Counter(),
        )
        for r in runs
    ]
    between = [sum(d.reads_after_first_write() for d in r.deliveries) for r in runs]
    reads_note = f"reads after an instance's first step write, worst of {len(runs)} runs of {n} instances"
    if any(run_reads):
        reads_note += "; worker reads per run: " + "; ".join(ops(c) for c in run_reads)
        if any(c["dynamodb.GetItem"] for c in run_reads):
            reads_note += (
                " (GetItem: the engine's look for pause or terminate, once per control_check_seconds of "
                "an invocation's running time)"
            )
    first = runs[0]
    sends = max(r.total["sqs.SendMessage"] for r in runs) / n
    completed = [sum(d.outcome == "completed" for d in r.deliveries) for r in runs]
    handled = [len(r.deliveries) for r in runs]
    invocations = max(r.invocations[WORKER] for r in runs) / n
    one_each = set(handled) == {n} and set(completed) == {n}
    return [
        Check(
            f"DynamoDB calls per step, the create's included ({label})",
            round(max(per_step), 3),
            f"<= {target_calls}" if calls_target else "",
            max(per_step) <= target_calls + 1e-9 if calls_target else None,
            calls_note,
        ),
        Check(f"DynamoDB reads between steps ({label})", max(between), "= 0", max(between) == 0, reads_note),
        Check(
            f"SQS messages sent per instance ({label})",
            round(sends, 2),
            "= 1",
            sends == 1,
            f"SendMessage: {first.create['sqs.SendMessage']} by the creates, "
            f"{first.after['sqs.SendMessage']} after (run 1)",
        ),
        Check(
            f"worker invocations per instance ({label})",
            round(invocations, 2),
            "<= 1, one message each",
            one_each and invocations <= 1,
            f"{handled[0]} messages handled for {n} instances ({completed[0]} ran to completion in theirs) "
            f"in {first.invocations[WORKER]} invocations (run 1): the event source mapping hands the worker "
            "up to 10 messages at once",
        ),
    ]


def sleep_section() -> Section:
    run = run_chain(10, sleep_after=5, sleep=SLEEP)
    hops = [d for d in run.deliveries if d.outcome == "hopped"]
    hop_db = sum(d.dynamodb() for d in hops)
    suspends = [d for d in run.deliveries if d.outcome == "suspended"]
    resumes = [d for d in run.deliveries if d.outcome == "completed"]
    resume = resumes[-1].calls if resumes else Counter()
    reads = sum(n for op, n in resume.items() if op in READS)
    expected = math.ceil(parse_duration(SLEEP) / MAX_DELAY_SECONDS)
    # One instance sleeps here, so a SendMessageBatch (the sweeper's) carries exactly one message.
    sent = Counter(
        {op: n for op, n in run.after.items() if op in ("sqs.SendMessage", "sqs.SendMessageBatch")}
    )
    sends = sum(sent.values())
    sweeps = run.invocations.get("SweeperFunction", 0)
    checks = [
        Check(
            "SQS messages sent for the sleep",
            sends,
            f"<= 2 (a hop chain: ceil({parse_duration(SLEEP):.0f}/{MAX_DELAY_SECONDS}) = {expected})",
            sends <= 2,
            f"after create: {ops(sent)}; the sleep is parked, and the sweeper sends its one wake-up",
        ),
        Check(
            f"early hops ({len(hops)}), and DynamoDB calls in them",
            hop_db,
            "= 0",
            hop_db == 0,
            f"{len(hops)} hops; {sweeps} sweeper run(s) (its Query per shard is shared by every instance)",
        ),
        Check(
            "journal reads on resume (all DynamoDB reads)",
            reads,
            "<= 1",
            reads <= 1,
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
