"""Retries: a step that fails k = 1, 3 and 5 times with exponential backoff, on LocalRuntime's virtual
clock. What each retry adds (DynamoDB calls, write units, SQS messages, worker invocations) beside the
floor for the same work with no framework, and wall time as a ratio to that floor, in the same run.

A retry's floor: 1 PutItem recording the attempt, and the SQS send, receive and delete of the one
delayed message that brings the next attempt. Per-retry figures are (the run with k failures - the run
with none) / k, for the framework and the floor alike, so the start and the final write are not charged
to the retries.

Wall time compares the work each side does outside the event source mapping: ours is ``rt.client.create``
plus the time inside ``handlers.worker.handler`` (Powertools included); the floor's is its sends and
PutItems. The mapping's receives and deletes are the same for both and left out of both, and so is
LocalRuntime's own polling (its look at the sweeper index between deliveries is not the application's).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws

from bench.counts import WORKER, ops
from bench.report import Check, Section
from bench.units import UnitMeter, Usage
from bench.workload import create_floor_table
from framework import Step, WorkflowEvent, workflow
from framework.api.calls import StepContext
from framework.backends.environment import Settings
from framework.local import LocalRuntime

RETRY = "bench-retry"
FAILURES = (1, 3, 5)
RUNS = 3
# The default policy, spelled out: 10 s, 20 s, 40 s, ... before retries 1, 2, 3, ...
POLICY = {"retries": {"limit": 5, "delay": "10 seconds", "backoff": "exponential"}}
REGION = "us-east-1"
# Every resume here runs in a container that has not seen the instance: the journal cache is off (an
# unknown variable is ignored, should the setting go). A resume after a backoff may land anywhere.
COLD = Settings.from_env({"WORKFLOWS_JOURNAL_CACHE_MB": "0"})


def _flaky(failures: int, ctx: StepContext) -> dict[str, int]:
    if ctx.attempt <= failures:
        raise RuntimeError(f"attempt {ctx.attempt} of {failures + 1} fails on purpose")
    return {"attempt": ctx.attempt}


@workflow(RETRY)
def flaky(event: WorkflowEvent, step: Step) -> int:
    """One step that fails ``failures`` times, then succeeds."""
    failures = int(event.payload["failures"])
    result = step.do("flaky", lambda ctx: _flaky(failures, ctx), config=POLICY)
    return int(result["attempt"])


# -- shared by the sections: timing and the raw boto3 floor ---------------------------------------------
@dataclass(frozen=True)
class Elapsed:
    """Wall and CPU seconds. CPU time is this process's (moto runs in it): the load that other processes
    put on a shared machine inflates wall time, not CPU time."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Elapsed) -> Elapsed:
        return Elapsed(self.wall + other.wall, self.cpu + other.cpu)

    def __truediv__(self, other: Elapsed) -> Elapsed:
        return Elapsed(self.wall / other.wall, self.cpu / other.cpu)


@contextmanager
def stopwatch(into: list[Elapsed]) -> Iterator[None]:
    """Append the wall and CPU time of the block to ``into``."""
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        into.append(Elapsed(time.perf_counter() - wall, time.process_time() - cpu))


@contextmanager
def worker_seconds() -> Iterator[list[Elapsed]]:
    """The time of each worker invocation (``handlers.worker.handler``, Powertools included). Enter it
    before the LocalRuntime: the runtime looks its handler up when it starts."""
    import handlers.worker as module

    real = module.handler
    spent: list[Elapsed] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        with stopwatch(spent):
            return real(event, context)

    with mock.patch.object(module, "handler", handler):
        yield spent


@dataclass
class RawStack:
    """A table (pk, sk; no index) and a queue on in-process moto, for a floor; ``spent`` collects the
    time of the floor's own calls (``timed``)."""

    db: Any
    sqs: Any
    table: str
    url: str
    spent: list[Elapsed] = field(default_factory=list)

    def timed(self, call: Callable[..., Any], **params: Any) -> Any:
        with stopwatch(self.spent):
            return call(**params)

    def elapsed(self) -> Elapsed:
        return sum(self.spent, Elapsed())

    def receive(self) -> dict[str, Any]:
        """One message, untimed: the event source mapping receives for the framework too."""
        return dict(self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=1)["Messages"][0])

    def delete(self, message: dict[str, Any]) -> None:
        """Untimed, as ``receive``."""
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def send(self, body: str) -> None:
        # No DelaySeconds: moto would wait it out in real time, and waiting is not work.
        self.timed(self.sqs.send_message, QueueUrl=self.url, MessageBody=body)

    def put_new(self, item: dict[str, Any]) -> None:
        """A conditional PutItem, as a journal write needs."""
        self.timed(
            self.db.put_item, TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)"
        )


@contextmanager
def raw_stack() -> Iterator[RawStack]:
    """A fresh in-process moto with one table and one queue; creating them is no part of a floor."""
    with mock_aws():
        db = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_floor_table(db, "floor")
        yield RawStack(db, sqs, "floor", sqs.create_queue(QueueName="floor")["QueueUrl"])


@dataclass(frozen=True)
class Metered:
    """Calls and units of some work."""

    calls: Counter[str]
    usage: Usage
    by_operation: dict[str, Usage]

    def dynamodb(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("dynamodb."))


def meter_floor(stack: RawStack, work: Callable[[], None]) -> Metered:
    """Calls and units of ``work`` on ``stack``, counted and metered as the framework's are."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        calls[".".join(event_name.split(".")[1:3])] += 1

    hooked = [(c, f"bench-floor-{id(calls)}") for c in (stack.db, stack.sqs)]
    for client, uid in hooked:
        client.meta.events.register("before-call.*.*", count, unique_id=uid)
    try:
        with UnitMeter(clients=[stack.db]) as meter:
            work()
    finally:
        for client, uid in hooked:
            client.meta.events.unregister("before-call.*.*", unique_id=uid)
    return Metered(calls, meter.usage(), meter.by_operation())


def spread(values: list[float], digits: int = 2) -> str:
    return f"median of {len(values)}; min {min(values):.{digits}f}, max {max(values):.{digits}f}"


def time_ratio(name: str, ratios: list[Elapsed], ours: list[Elapsed], floor: list[Elapsed]) -> Check:
    """A Check of wall time over the floor's (medians of the runs), with the CPU-time ratio beside it."""
    wall, cpu = [r.wall for r in ratios], [r.cpu for r in ratios]
    return Check(
        name,
        round(statistics.median(wall), 2),
        note=f"{spread(wall)}; ours {statistics.median(t.wall for t in ours) * 1000:.0f} ms, floor "
        f"{statistics.median(t.wall for t in floor) * 1000:.0f} ms. CPU time / floor's: "
        f"{statistics.median(cpu):.2f} (min {min(cpu):.2f}, max {max(cpu):.2f})",
    )


def check_complete(rt: LocalRuntime, instance_id: str) -> None:
    status = rt.client.get(instance_id).status()
    if status.status != "complete":
        raise RuntimeError(f"bench instance {instance_id} ended {status.status}: {status.error}")


# -- this section ---------------------------------------------------------------------------------
def floor_retries(stack: RawStack, instance_id: str, failures: int) -> None:
    """The start's message; per failed attempt a PutItem recording it and the message that brings the
    next attempt; then the result's PutItem."""
    stack.send(json.dumps({"id": instance_id}))
    for attempt in range(1, failures + 2):
        message = stack.receive()
        key = {"pk": {"S": instance_id}, "sk": {"S": f"j#0001#000000#{attempt:03d}"}}
        if attempt <= failures:
            error = f"RuntimeError: attempt {attempt} of {failures + 1} fails on purpose"
            stack.put_new(key | {"error": {"S": error}})
            stack.send(message["Body"])
        else:
            stack.put_new(key | {"result": {"S": json.dumps({"attempt": attempt})}})
        stack.delete(message)


@dataclass(frozen=True)
class Timed:
    """One unmetered instance: its counted calls, worker invocations and time (create + handler)."""

    calls: Counter[str]
    invocations: int
    elapsed: Elapsed


def run_metered(rt: LocalRuntime, failures: int) -> Metered:
    instance_id = f"metered-{failures}"
    mark = rt.aws_calls.copy()
    with UnitMeter(rt) as meter:
        rt.client.create(RETRY, {"failures": failures}, id=instance_id)
        rt.run_until_idle()
    check_complete(rt, instance_id)
    return Metered(rt.aws_calls - mark, meter.usage(), meter.by_operation())


def run_framework(runs: int) -> tuple[dict[int, Metered], list[dict[int, Timed]]]:
    """Per run, a fresh LocalRuntime and an instance for each k (and k = 0), timed and counted. The
    first run also meters one instance for each k first: units follow from item sizes, the same in every
    run, and the meter's own reads would slow the timed instances. Its instances warm the runtime up;
    later runs have a warm-up instance of their own."""
    metered: dict[int, Metered] = {}
    timed: list[dict[int, Timed]] = []
    for run in range(runs):
        with worker_seconds() as spent, LocalRuntime(workflows=[flaky], settings=COLD) as rt:
            if run == 0:
                metered = {k: run_metered(rt, k) for k in (0, *FAILURES)}
            else:
                rt.client.create(RETRY, {"failures": 1}, id="warm-up")
                rt.run_until_idle()
            found: dict[int, Timed] = {}
            for k in (0, *FAILURES):
                instance_id, before = f"timed-{k}", len(spent)
                mark, invoked = rt.aws_calls.copy(), rt.invocations[WORKER]
                gc.collect()
                with stopwatch(spent):
                    rt.client.create(RETRY, {"failures": k}, id=instance_id)
                rt.run_until_idle()
                check_complete(rt, instance_id)
                found[k] = Timed(
                    rt.aws_calls - mark, rt.invocations[WORKER] - invoked, sum(spent[before:], Elapsed())
                )
            timed.append(found)
    return metered, timed


def run_floor(runs: int) -> tuple[dict[int, Metered], list[dict[int, Elapsed]]]:
    """Metered floors for each k (and k = 0) once, then timed floors per run, on one fresh moto each."""
    with raw_stack() as stack:
        metered = {
            k: meter_floor(stack, lambda k=k: floor_retries(stack, f"metered-{k}", k)) for k in (0, *FAILURES)
        }
    elapsed: list[dict[int, Elapsed]] = []
    for run in range(runs):
        with raw_stack() as stack:
            floor_retries(stack, f"warm-up-{run}", 1)  # moto's first calls on a fresh stack are slower
            timed: dict[int, Elapsed] = {}
            for k in FAILURES:
                gc.collect()
                stack.spent.clear()
                floor_retries(stack, f"timed-{run}-{k}", k)
                timed[k] = stack.elapsed()
            elapsed.append(timed)
    return metered, elapsed


def counted(timed: Timed) -> dict[str, float]:
    """The counted figures of one instance, compared per retry."""
    calls = timed.calls
    return {
        "dynamodb_calls": float(sum(n for op, n in calls.items() if op.startswith("dynamodb."))),
        "sqs_messages": float(calls["sqs.SendMessage"]),
        # The event source mapping's deletes, one per delivered message here (one instance at a time);
        # its empty polls are a fixed per-queue cost (bench/cost.py), not the retries'.
        "sqs_deletes": float(calls["sqs.DeleteMessageBatch"] + calls["sqs.DeleteMessage"]),
        "worker_invocations": float(timed.invocations),
    }


def floor_figures(floor: dict[int, Metered], k: int) -> dict[str, float]:
    base, with_k = floor[0], floor[k]
    return {
        "dynamodb_calls": (with_k.dynamodb() - base.dynamodb()) / k,
        "write_units": (with_k.usage.write_units - base.usage.write_units) / k,
        "read_units": (with_k.usage.read_units - base.usage.read_units) / k,
        "sqs_messages": (with_k.calls["sqs.SendMessage"] - base.calls["sqs.SendMessage"]) / k,
        # One invocation per message received.
        "worker_invocations": (with_k.calls["sqs.ReceiveMessage"] - base.calls["sqs.ReceiveMessage"]) / k,
    }


def retry_section(runs: int = RUNS) -> Section:
    started = time.perf_counter()
    metered, timed = run_framework(runs)
    floor, floor_s = run_floor(runs)
    last = FAILURES[-1]

    # per_retry[k][figure]: one value per run for the counted figures, one for the units
    per_retry: dict[int, dict[str, list[float]]] = {k: {} for k in FAILURES}
    for run in timed:
        base = counted(run[0])
        for k in FAILURES:
            for name, value in counted(run[k]).items():
                per_retry[k].setdefault(name, []).append((value - base[name]) / k)
    for k in FAILURES:
        for name in ("write_units", "index_write_units", "read_units"):
            per_retry[k][name] = [(getattr(metered[k].usage, name) - getattr(metered[0].usage, name)) / k]
    floors = {k: floor_figures(floor, k) for k in FAILURES}
    ratios = {k: [run[k].elapsed / f[k] for run, f in zip(timed, floor_s, strict=True)] for k in FAILURES}

    def med(k: int, name: str) -> float:
        return statistics.median(per_retry[k][name])

    def line(name: str, figure: str, why: str = "") -> Check:
        by_k = ", ".join(f"k={k}: {med(k, figure):g}" for k in FAILURES)
        n = len(per_retry[last][figure])
        how = f"medians of {n} runs" if n > 1 else "metered in one run: item sizes do not vary"
        versus = ""
        if figure in floors[last]:
            f = floors[last][figure]
            versus = f"; floor {f:g}" + (f" ({med(last, figure) / f:.1f}x)" if f else "")
        return Check(name, med(last, figure), note=f"{by_k} ({how}){versus}{why}")

    extra_calls = Counter(
        {
            op: (n - metered[0].calls[op]) // last
            for op, n in metered[last].calls.items()
            if op.startswith("dynamodb.")
        }
    )
    wu_ops = {
        op: (u.write_units - metered[0].by_operation.get(op, Usage()).write_units) / last
        for op, u in metered[last].by_operation.items()
    }
    checks = [
        line("DynamoDB calls per retry", "dynamodb_calls", f". Per retry: {ops(+extra_calls)}"),
        line(
            "write units per retry (GSI writes included)",
            "write_units",
            f". Of them GSI writes: {med(last, 'index_write_units'):g}; by operation: "
            + ", ".join(f"{op} {v:g}" for op, v in sorted(wu_ops.items()) if v),
        ),
        line("read units per retry", "read_units", ": the floor's attempt count rides in the message"),
        line(
            "SQS messages per retry",
            "sqs_messages",
            f". Each also costs a receive and {med(last, 'sqs_deletes'):g} delete(s) by the event source "
            "mapping, as the floor's",
        ),
        line("worker invocations per retry", "worker_invocations"),
        *[
            time_ratio(
                f"k={k}: wall time / floor's, one instance",
                ratios[k],
                [r[k].elapsed for r in timed],
                [f[k] for f in floor_s],
            )
            for k in FAILURES
        ],
    ]
    data = {
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "workload": {"failures": list(FAILURES), "runs": runs, "policy": POLICY, "journal_cache": "off"},
        "per_retry": {str(k): {n: statistics.median(v) for n, v in per_retry[k].items()} for k in FAILURES},
        "floor_per_retry": {str(k): v for k, v in floors.items()},
        "instances": {
            str(k): {"calls": dict(m.calls), "units": m.usage.per(1), "floor_units": floor[k].usage.per(1)}
            for k, m in metered.items()
        },
        "seconds": [
            {
                str(k): {
                    "framework": {"wall": run[k].elapsed.wall, "cpu": run[k].elapsed.cpu},
                    "floor": {"wall": f[k].wall, "cpu": f[k].cpu},
                }
                for k in FAILURES
            }
            for run, f in zip(timed, floor_s, strict=True)
        ],
    }
    return Section(
        f"Retries: one step failing k = {', '.join(map(str, FAILURES))} times, exponential backoff from "
        "10 s (virtual clock; cold resumes; per retry = (run with k failures - run with none) / k)",
        checks,
        data,
    )
