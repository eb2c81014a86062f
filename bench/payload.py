"""Payloads: steps that return 100 B to 350 KB (KB = 1024 bytes, DynamoDB's unit). Write units per
step from item sizes against the floor (a raw conditional PutItem of the same result), read units of
the resume that reads them back, S3 calls where a result goes to the blob store, and wall time as a ratio
to the floor's, measured in the same run.

Each instance runs ``STEPS`` steps that return a string of the size, then sleeps 60 s (a delayed SQS
message, then one resume) and completes. The resume runs in a container that has not seen the instance
(``bench.retry.COLD``), so it reads the journal; in a warm one the journal cache spares that read. The
floor does the same work with raw boto3: per step a conditional PutItem of the result's JSON, and a
Query of them on the resume. Wall time is measured as in ``bench.retry`` (ours: create + inside the
worker handler; the floor: its sends, PutItems and Query; the event source mapping's receives and
deletes in neither).
"""

from __future__ import annotations

import functools
import gc
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.prices import MILLION, S3_GET, S3_PUT, WRITE_UNIT
from bench.report import Check, Section
from bench.retry import (
    COLD,
    Elapsed,
    RawStack,
    check_complete,
    meter_floor,
    raw_stack,
    stopwatch,
    time_ratio,
    worker_seconds,
)
from bench.units import UnitMeter, Usage
from framework import Step, WorkflowEvent, workflow
from framework.backends.dynamodb_items import entry_key
from framework.core.records import RunKey, new_incarnation
from framework.local import LocalRuntime

PAYLOAD = "bench-payload"
KB = 1024
SIZES = {"100 B": 100, "1 KB": KB, "10 KB": 10 * KB, "100 KB": 100 * KB, "350 KB": 350 * KB}
STEPS = 3
RUNS = 3
SLEEP = "60 seconds"


def _result(size: int, i: int) -> str:
    return (str(i) * size)[:size]


@workflow(PAYLOAD)
def sized(event: WorkflowEvent, step: Step) -> int:
    """``steps`` steps that each return a string of ``size`` bytes, a sleep, and the end."""
    size, steps = int(event.payload["size"]), int(event.payload["steps"])
    for i in range(steps):
        step.do(f"result-{i}", functools.partial(_result, size, i))
    step.sleep("nap", SLEEP)
    return steps


@dataclass(frozen=True)
class Metered:
    """One metered instance: units of its step entries' writes, of everything, of its table reads."""

    step_units: Usage  # the PutItems of the step entries
    all_units: Usage
    read_units: float  # on the table: the resume's journal Query
    calls: Counter[str]


def run_metered(rt: LocalRuntime, size: int) -> Metered:
    instance_id = f"metered-{size}"
    mark = rt.aws_calls.copy()
    with UnitMeter(rt) as meter:
        rt.client.create(PAYLOAD, {"size": size, "steps": STEPS}, id=instance_id)
        rt.run_until_idle()
    check_complete(rt, instance_id)
    record = rt.env.store.get_instance(instance_id)
    assert record is not None
    steps = {entry_key(record.run_key, seq) for seq in range(STEPS)}  # under its incarnation and run
    step_units = sum(
        (c.usage for c in meter.charges if c.operation == "PutItem" and c.key.get("sk") in steps), Usage()
    )
    reads = sum(c.usage.read_units for c in meter.charges if "IndexName" not in c.key)
    return Metered(step_units, meter.usage(), reads, rt.aws_calls - mark)


def run_framework(runs: int) -> tuple[dict[str, Metered], list[dict[str, tuple[Counter[str], Elapsed]]]]:
    """Per run, a fresh LocalRuntime and an instance of each size, timed, with its calls counted. The
    first run meters one instance of each size first (units follow from item sizes, the same in every
    run, and the meter's own reads would slow a timed instance); later runs warm up with one instance."""
    metered: dict[str, Metered] = {}
    timed: list[dict[str, tuple[Counter[str], Elapsed]]] = []
    for run in range(runs):
        with worker_seconds() as spent, LocalRuntime(workflows=[sized], settings=COLD) as rt:
            if run == 0:
                metered = {label: run_metered(rt, size) for label, size in SIZES.items()}
            else:
                rt.client.create(PAYLOAD, {"size": KB, "steps": STEPS}, id="warm-up")
                rt.run_until_idle()
            found: dict[str, tuple[Counter[str], Elapsed]] = {}
            for label, size in SIZES.items():
                instance_id, before, mark = f"timed-{size}", len(spent), rt.aws_calls.copy()
                gc.collect()
                with stopwatch(spent):
                    rt.client.create(PAYLOAD, {"size": size, "steps": STEPS}, id=instance_id)
                rt.run_until_idle()
                check_complete(rt, instance_id)
                found[label] = (rt.aws_calls - mark, sum(spent[before:], Elapsed()))
            timed.append(found)
    return metered, timed


FLOOR_RUN = RunKey(new_incarnation(), 1)  # the floor's items under a run key, as ours are


def floor_instance(stack: RawStack, instance_id: str, size: int) -> None:
    """The start's message, a conditional PutItem per result, the wake-up's message, one Query."""
    stack.send(json.dumps({"id": instance_id}))
    message = stack.receive()
    for i in range(STEPS):
        key = {"pk": {"S": instance_id}, "sk": {"S": entry_key(FLOOR_RUN, i)}}
        stack.put_new(key | {"result": {"S": json.dumps(_result(size, i))}})
    stack.send(message["Body"])
    stack.delete(message)
    message = stack.receive()
    query = {
        "TableName": stack.table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": instance_id}},
        "ConsistentRead": True,
    }
    while True:  # pages of at most 1 MB
        page = stack.timed(stack.db.query, **query)
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    stack.delete(message)


def run_floor(runs: int) -> tuple[dict[str, Any], list[dict[str, Elapsed]]]:
    with raw_stack() as stack:
        metered = {
            label: meter_floor(stack, lambda size=size: floor_instance(stack, f"metered-{size}", size))
            for label, size in SIZES.items()
        }
    elapsed: list[dict[str, Elapsed]] = []
    for run in range(runs):
        with raw_stack() as stack:
            floor_instance(stack, f"warm-up-{run}", KB)  # moto's first calls on a fresh stack are slower
            timed: dict[str, Elapsed] = {}
            for label, size in SIZES.items():
                gc.collect()
                stack.spent.clear()
                floor_instance(stack, f"timed-{run}-{size}", size)
                timed[label] = stack.elapsed()
            elapsed.append(timed)
    return metered, elapsed


def payload_section(runs: int = RUNS) -> Section:
    started = time.perf_counter()
    metered, timed = run_framework(runs)
    floor, floor_s = run_floor(runs)
    checks: list[Check] = []
    table: dict[str, dict[str, Any]] = {}
    for label, size in SIZES.items():
        m = metered[label]
        wu, all_wu, ru = m.step_units.write_units / STEPS, m.all_units.write_units / STEPS, m.read_units
        calls = [run[label][0] for run in timed]
        varied = "" if all(c == calls[0] for c in calls) else " (the runs' calls differed: see results.json)"
        puts, gets = calls[0]["s3.PutObject"] / STEPS, calls[0]["s3.GetObject"]
        floor_wu = floor[label].by_operation.get("PutItem", Usage()).write_units / STEPS
        floor_ru = floor[label].usage.read_units
        ratios = [run[label][1] / f[label] for run, f in zip(timed, floor_s, strict=True)]
        dollars = wu * WRITE_UNIT + puts * S3_PUT
        floor_dollars = floor_wu * WRITE_UNIT
        s3 = f"; S3 per step {puts:g} PutObject, on resume {gets:g} GetObject" if puts or gets else ""
        checks += [
            Check(
                f"{label}: write units per step (journal PutItem)",
                wu,
                note=f"floor {floor_wu:g}{s3}; all writes of the instance per step {all_wu:.1f} (GSI "
                "included); item sizes do not vary: metered in one run. $/M steps: ours "
                f"{dollars * MILLION:,.2f}, floor {floor_dollars * MILLION:,.2f}{varied}",
            ),
            Check(
                f"{label}: read units on resume ({STEPS} results)",
                ru,
                note=f"floor {floor_ru:g}"
                + (f"; plus {gets:g} S3 GETs (${gets * S3_GET * MILLION:,.2f}/M resumes)" if gets else ""),
            ),
            time_ratio(
                f"{label}: wall time / floor's, one instance",
                ratios,
                [run[label][1] for run in timed],
                [f[label] for f in floor_s],
            ),
        ]
        table[label] = {
            "bytes": size,
            "write_units_per_step": wu,
            "write_units_per_step_all": all_wu,
            "read_units_on_resume": ru,
            "s3_put_per_step": puts,
            "s3_get_on_resume": gets,
            "floor_write_units_per_step": floor_wu,
            "floor_read_units_on_resume": floor_ru,
            "time_ratio": {
                clock: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                for clock, v in (("wall", [r.wall for r in ratios]), ("cpu", [r.cpu for r in ratios]))
            },
            "calls": [dict(c) for c in calls],
            "floor_calls": dict(floor[label].calls),
        }
    data = {
        "elapsed_seconds": round(time.perf_counter() - started, 1),
        "workload": {"steps": STEPS, "sleep": SLEEP, "runs": runs, "sizes": SIZES, "journal_cache": "off"},
        "by_size": table,
        "seconds": [
            {
                label: {
                    "framework": {"wall": run[label][1].wall, "cpu": run[label][1].cpu},
                    "floor": {"wall": f[label].wall, "cpu": f[label].cpu},
                }
                for label in SIZES
            }
            for run, f in zip(timed, floor_s, strict=True)
        ],
    }
    return Section(
        f"Payloads: {STEPS} steps returning 100 B to 350 KB each, then a sleep of {SLEEP} (units from item "
        f"sizes; times: medians of {runs})",
        checks,
        data,
    )
