"""The chain, section 1: N instances x M steps on LocalRuntime, counted and timed against the raw boto3
floor measured beside it on a fresh in-process moto.

Each timed run has a table and queue of its own (moto's calls slow down as they grow), and the framework
and floor runs of one size alternate in order from run to run, so that drift on the machine falls on both.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

import boto3
from botocore.client import BaseClient
from moto import mock_aws

from bench.counts import WORKER, chain_count_checks
from bench.report import Check, Plot, Section, Series
from bench.workload import CHAIN, Delivery, chain, create_floor_table, observe
from framework.core.clock import VirtualClock
from framework.local import LocalRuntime
from framework.local.motoclock import follow_clock

REGION = "us-east-1"
RUNS = 3
RATIO_TARGET = 1.5
# A 100 x 100 pair (10,000 steps on each side) takes about 65 s here: three of them would be most of
# `make bench`. moto's per-call time barely moves between 1,000 and 10,000 items, so the 100-step chain
# runs with fewer instances by default; BENCH_FULL=1 runs all 100.
LONG_INSTANCES = 100 if os.environ.get("BENCH_FULL") == "1" else 30
SIZES = ((100, 1), (100, 10), (LONG_INSTANCES, 100))
WARMUP = (10, 10)  # imports, handler import and moto's lazy set-up, discarded


@contextmanager
def call_time() -> Iterator[Counter[str]]:
    """Seconds spent inside AWS calls (botocore and moto, since moto runs in-process), per operation, by
    wrapping every client's ``_make_api_call``. Framework and floor are measured alike, so the rest of
    a run's time is the framework's own Python: the engine, Powertools, the local event source mapping."""
    spent: Counter[str] = Counter()
    real = BaseClient._make_api_call

    def timed(client: Any, operation: str, params: dict[str, Any]) -> Any:
        start = time.perf_counter()
        try:
            return real(client, operation, params)
        finally:
            spent[f"{client.meta.service_model.service_name}.{operation}"] += time.perf_counter() - start

    with mock.patch.object(BaseClient, "_make_api_call", timed):
        yield spent


@dataclass(frozen=True)
class FrameworkRun:
    """One timed run on a fresh LocalRuntime, and every AWS call it made (counted by its hooks)."""

    instances: int
    steps: int
    seconds: float
    cpu: float  # this process's CPU time meanwhile: what other work on the machine does not inflate
    in_calls: Counter[str]  # seconds inside AWS calls, per operation
    create: Counter[str]  # by rt.client.create, for all instances
    after: Counter[str]  # after the creates: the worker's and the event source mapping's
    deliveries: list[Delivery]
    invocations: Counter[str]

    @property
    def total(self) -> Counter[str]:
        return self.create + self.after


@dataclass(frozen=True)
class FloorRun:
    instances: int
    steps: int
    seconds: float
    cpu: float
    in_calls: Counter[str]
    calls: Counter[str]


def framework_run(instances: int, steps: int) -> FrameworkRun:
    """Create ``instances`` chains one by one and run them to the end; set-up and the final status
    reads are untimed. The creates are timed: they are the floor's instance PutItem and SendMessage."""
    with LocalRuntime(workflows=[chain]) as rt, observe(rt) as deliveries:
        gc.collect()
        mark = rt.aws_calls.copy()
        with call_time() as in_calls:
            start, cpu = time.perf_counter(), time.process_time()
            handles = [rt.client.create(CHAIN, {"steps": steps}, id=f"bench-{i}") for i in range(instances)]
            created = rt.aws_calls.copy()
            rt.run_until_idle()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        after = rt.aws_calls - created
        unfinished = [h.id for h in handles if h.status().status != "complete"]
        if unfinished:
            raise RuntimeError(f"chain run left instances unfinished: {unfinished[:5]}")
        if len(deliveries) < instances:
            raise RuntimeError("fewer deliveries than instances: the process_message recorder is stale")
        return FrameworkRun(
            instances,
            steps,
            elapsed,
            cpu,
            in_calls,
            created - mark,
            after,
            list(deliveries),
            Counter(rt.invocations),
        )


def floor_run(instances: int, steps: int) -> FloorRun:
    """The same work with no framework, on a fresh in-process moto, counted by the same kind of botocore
    hook (see ``_floor_work``). Table and queue creation are untimed."""
    calls: Counter[str] = Counter()

    def count(event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        calls[f"{service}.{operation}"] += 1

    # moto's SQS reads the time for every message it walks past; LocalRuntime points that at its virtual
    # clock, which is far cheaper than moto's own. The floor gets the same hook, or its receives would
    # pay a cost that the framework's do not.
    with mock_aws(), follow_clock(VirtualClock()):
        session = boto3.Session(region_name=REGION)
        session.events.register("before-call.*.*", count)  # before the clients: they copy the hooks
        db, sqs = session.client("dynamodb"), session.client("sqs")
        create_floor_table(db, "floor")
        url = sqs.create_queue(QueueName="floor")["QueueUrl"]
        calls.clear()  # the set-up's calls
        gc.collect()
        with call_time() as in_calls:
            start, cpu = time.perf_counter(), time.process_time()
            _floor_work(db, sqs, url, instances, steps)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return FloorRun(instances, steps, elapsed, cpu, in_calls, calls)


def _floor_work(db: Any, sqs: Any, url: str, instances: int, steps: int) -> None:
    """Per instance a conditional PutItem of its record and a SendMessage (what a create needs); then, as
    the event source mapping does, receives of up to 10 messages and one DeleteMessageBatch per receive;
    per message, ``steps`` conditional PutItems of step results.

    The instance record is in the floor because the cost model counts it (11 write units for 10 steps):
    without it nothing records that an instance exists, so a second create with the same id could not
    be refused and its status could not be read. Completion is not in it: the cost model lets it fold
    into the last step's write, so the floor makes N step writes and no more."""
    for i in range(instances):
        pk = f"bench-{i}"
        db.put_item(
            TableName="floor",
            Item={"pk": {"S": pk}, "sk": {"S": "instance"}, "params": {"S": json.dumps({"steps": steps})}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": pk}))
    done = 0
    while done < instances:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        for message in messages:
            pk = json.loads(message["Body"])["id"]
            for seq in range(steps):
                db.put_item(
                    TableName="floor",
                    Item={
                        "pk": {"S": pk},
                        "sk": {"S": f"j#0001#{seq:06d}"},
                        "result": {"S": json.dumps({"i": seq})},
                    },
                    ConditionExpression="attribute_not_exists(sk)",
                )
        if messages:
            entries = [{"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        done += len(messages)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(s: dict[str, float], digits: int) -> str:
    return f"median {s['median']:.{digits}f} (min {s['min']:.{digits}f}, max {s['max']:.{digits}f})"


def chain_section(sizes: tuple[tuple[int, int], ...] = SIZES, runs: int = RUNS) -> Section:
    """Counts and timings of each size; ``runs`` interleaved framework/floor pairs per size."""
    started = time.perf_counter()
    framework_run(*WARMUP)
    floor_run(*WARMUP)
    ours: dict[tuple[int, int], list[FrameworkRun]] = {size: [] for size in sizes}
    floor: dict[tuple[int, int], list[FloorRun]] = {size: [] for size in sizes}
    for run in range(runs):
        for k, size in enumerate(sizes):
            if (run + k) % 2:
                floor[size].append(floor_run(*size))
                ours[size].append(framework_run(*size))
            else:
                ours[size].append(framework_run(*size))
                floor[size].append(floor_run(*size))

    checks: list[Check] = []
    data_sizes: list[dict[str, Any]] = []
    for instances, steps in sizes:
        size = (instances, steps)
        label = f"{instances} x {steps}"
        total = instances * steps
        fw_s = [r.seconds for r in ours[size]]
        fl_s = [r.seconds for r in floor[size]]
        ratios = [a / b for a, b in zip(fw_s, fl_s, strict=True)]
        cpu_ratios = [a.cpu / b.cpu for a, b in zip(ours[size], floor[size], strict=True)]
        fw_rate = spread([total / s for s in fw_s])
        fl_rate = spread([total / s for s in fl_s])
        ratio = spread(ratios)
        checks += chain_count_checks(label, ours[size], floor[size], calls_target=steps == 10)
        split_note, split = _split(ours[size], floor[size])
        passed = ratio["median"] <= RATIO_TARGET
        checks.append(
            Check(
                f"wall time per step / floor's ({label})",
                round(ratio["median"], 2),
                f"<= {RATIO_TARGET}",
                passed,
                f"{_fmt(ratio, 2)} over {runs} runs, each against the floor run beside it; "
                f"{1000 / fw_rate['median']:.2f} ms a step against {1000 / fl_rate['median']:.2f} ms. CPU "
                f"time, which other work on the machine does not inflate: {_fmt(spread(cpu_ratios), 2)}. "
                f"{split_note}. " + _calls_share(ours[size][0], floor[size][0]),
            )
        )
        checks.append(
            Check(
                f"steps/s, ours ({label})",
                round(fw_rate["median"]),
                note=f"{_fmt(fw_rate, 0)}; raw boto3 floor {_fmt(fl_rate, 0)}",
            )
        )
        data_sizes.append(
            {
                "instances": instances,
                "steps": steps,
                "framework_seconds": fw_s,
                "floor_seconds": fl_s,
                "ratio": ratio | {"runs": ratios},
                "framework_cpu_seconds": [r.cpu for r in ours[size]],
                "floor_cpu_seconds": [r.cpu for r in floor[size]],
                "cpu_ratio": spread(cpu_ratios) | {"runs": cpu_ratios},
                "framework_steps_per_s": fw_rate,
                "floor_steps_per_s": fl_rate,
                "ms_per_step": split,
                "calls_per_instance": {
                    "framework": _per(ours[size][0].total, instances),
                    "framework_create": _per(ours[size][0].create, instances),
                    "floor": _per(floor[size][0].calls, instances),
                },
                "deliveries_per_instance": len(ours[size][0].deliveries) / instances,
                "worker_invocations_per_instance": ours[size][0].invocations[WORKER] / instances,
            }
        )
    data = {
        "chain": {
            "runs": runs,
            "warmup": {"instances": WARMUP[0], "steps": WARMUP[1], "discarded": True},
            "full": LONG_INSTANCES == 100,
            "floor": "per instance, a conditional PutItem of its record and a SendMessage; receives of up "
            "to 10 messages with one DeleteMessageBatch each, as the event source mapping does; per message, "
            "one conditional PutItem per step. The instance record is in the floor because the cost model "
            "counts it (11 write units for 10 steps): without it a second create with the same id could not "
            "be refused, nor the status read. Completion is not: the cost model lets it fold into the last "
            "step's write",
            "sizes": data_sizes,
            "elapsed_seconds": round(time.perf_counter() - started, 1),
        }
    }
    return Section(
        f"1. Chain: instances x steps, no sleeps; {runs} interleaved runs against the raw boto3 floor",
        checks,
        data,
        plots=_plots(data_sizes),
    )


def _per(calls: Counter[str], n: int) -> dict[str, float]:
    return {op: count / n for op, count in sorted(calls.items()) if count}


def _split(ours: list[FrameworkRun], floor: list[FloorRun]) -> tuple[str, dict[str, Any]]:
    """Where a step's time goes, medians over the runs in ms: inside AWS calls (botocore and in-process
    moto) and outside them; and moto's time per call of each operation."""
    steps = ours[0].instances * ours[0].steps

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000 / steps

    def per_call(runs: list[Any], counted: list[Counter[str]], op: str) -> float | None:
        times = [r.in_calls[op] / c[op] for r, c in zip(runs, counted, strict=True) if c[op]]
        return statistics.median(times) * 1000 if times else None

    split: dict[str, Any] = {
        "in_aws_calls": {
            "ours": ms([sum(r.in_calls.values()) for r in ours]),
            "floor": ms([sum(r.in_calls.values()) for r in floor]),
        },
        "outside_aws_calls": {
            "ours": ms([r.seconds - sum(r.in_calls.values()) for r in ours]),
            "floor": ms([r.seconds - sum(r.in_calls.values()) for r in floor]),
        },
    }
    ops = sorted(op for op in ours[0].total if ours[0].total[op])
    split["ms_per_call"] = {
        "ours": {op: per_call(ours, [r.total for r in ours], op) for op in ops},
        "floor": {op: per_call(floor, [r.calls for r in floor], op) for op in sorted(floor[0].calls)},
    }
    shown = []
    for op in ops:
        mine, theirs = split["ms_per_call"]["ours"][op], split["ms_per_call"]["floor"].get(op)
        if mine is not None:
            shown.append(
                f"{op.split('.', 1)[1]} {mine:.1f}" + (f" (floor {theirs:.1f})" if theirs is not None else "")
            )
    # What the ratio would be if each of our calls took as long as the floor's average call: the time
    # that moto's emulation adds to some operations (its UpdateItem is several PutItems long) taken out.
    even = [
        (
            sum(o.total.values()) * sum(f.in_calls.values()) / sum(f.calls.values())
            + o.seconds
            - sum(o.in_calls.values())
        )
        / f.seconds
        for o, f in zip(ours, floor, strict=True)
    ]
    split["ratio_calls_at_floor_cost"] = spread(even) | {"runs": even}
    inside, outside = split["in_aws_calls"], split["outside_aws_calls"]
    note = (
        f"Per step, inside AWS calls (botocore + moto): ours {inside['ours']:.2f} ms, floor "
        f"{inside['floor']:.2f}; outside them (the engine, Powertools, the local event source mapping): ours "
        f"{outside['ours']:.2f} ms, floor {outside['floor']:.2f}. ms per call: "
        + ", ".join(shown)
        + ". Were each of our calls as long as the floor's mean call: "
        + _fmt(split["ratio_calls_at_floor_cost"], 2)
    )
    return note, split


def _calls_share(ours: FrameworkRun, floor: FloorRun) -> str:
    """The number of AWS calls, ours against the floor's."""
    n = ours.instances
    a, b = sum(ours.total.values()), sum(floor.calls.values())
    return f"AWS calls per instance: ours {a / n:g}, the floor {b / n:g} ({a / b:.2f}x)"


def _plots(sizes: list[dict[str, Any]]) -> list[Plot]:
    labels = [f"{s['instances']} x {s['steps']}" for s in sizes]

    def series(label: str, key: str) -> Series:
        return Series(
            label,
            labels,
            [s[key]["median"] for s in sizes],
            low=[s[key]["min"] for s in sizes],
            high=[s[key]["max"] for s in sizes],
        )

    return [
        Plot(
            "chain-steps-per-s",
            "Chain: steps/s, ours against the raw boto3 floor (median, min-max)",
            "instances x steps",
            "steps/s",
            [
                series("Lambda Workflows", "framework_steps_per_s"),
                series("raw boto3 floor", "floor_steps_per_s"),
            ],
            kind="bar",
        ),
        Plot(
            "chain-ratio",
            "Chain: time per step over the floor's (median, min-max)",
            "instances x steps",
            "ours / floor",
            [
                series("wall time", "ratio"),
                series("CPU time of the process", "cpu_ratio"),
                Series(
                    "each call at the floor's mean call time",
                    labels,
                    [s["ms_per_step"]["ratio_calls_at_floor_cost"]["median"] for s in sizes],
                    low=[s["ms_per_step"]["ratio_calls_at_floor_cost"]["min"] for s in sizes],
                    high=[s["ms_per_step"]["ratio_calls_at_floor_cost"]["max"] for s in sizes],
                ),
            ],
            kind="bar",
            hlines={f"target {RATIO_TARGET}x": RATIO_TARGET, "floor": 1.0},
        ),
    ]
