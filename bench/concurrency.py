"""Async workflows beside the sync chain: a 10-step async chain and a 10-way parallel step, counted with
botocore's hooks (LocalRuntime.aws_calls) and timed only as ratios to baselines run alongside.

- DynamoDB calls and reads per step, after the create, for the sync chain, the async chain and the
  parallel step: the floor is one write per step plus the lease and the release, no read.
- Time per step of the async chain as a ratio to the sync chain's (same steps, same stack, alternated).
- Wall time of ten 0.2 s bodies run with ``asyncio.gather`` as a ratio to one such body run alone: about
  1 when the bodies run at once, 10 when they do not. Plain-function bodies (threads) and ``async def``
  bodies (the body loop) both.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any

from bench.report import Check, Section
from bench.workload import CHAIN, READS, chain
from framework import Step, WorkflowEvent, workflow
from framework.local import LocalRuntime

ASYNC_CHAIN = "bench-async-chain"
PARALLEL = "bench-parallel"
STEPS = 10
IO_SECONDS = 0.2
RUNS = 5


@workflow(ASYNC_CHAIN)
async def async_chain(event: WorkflowEvent, step: Step) -> int:
    for i in range(event.payload["steps"]):
        await step.do(f"step-{i}", lambda i=i: {"i": i})
    return int(event.payload["steps"])


def _io_sync(i: int) -> int:
    time.sleep(IO_SECONDS)  # a blocking call: one thread each
    return i


async def _io_async(i: int) -> int:
    await asyncio.sleep(IO_SECONDS)  # a coroutine: all on the body loop
    return i


@workflow(PARALLEL)
async def parallel(event: WorkflowEvent, step: Step) -> int:
    n, kind = event.payload["steps"], event.payload["kind"]
    io = _io_async if kind == "async" else _io_sync
    done = await asyncio.gather(*(step.do(f"io-{i}", lambda i=i: io(i)) for i in range(n)))
    return len(done)


def _run(rt: LocalRuntime, workflow: str, params: dict[str, Any]) -> tuple[Counter[str], float]:
    """One instance to its end: the AWS calls after the create, and the wall time of the run."""
    inst = rt.client.create(workflow, params)
    rt.aws_calls.clear()
    started = time.perf_counter()
    rt.run_until_idle()
    seconds = time.perf_counter() - started
    calls = Counter(rt.aws_calls)
    status = inst.status()
    if status.status != "complete":
        raise RuntimeError(f"{workflow} ended {status.status}: {status.error}")
    return calls, seconds


def _dynamodb(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op.startswith("dynamodb."))


def _reads(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op in READS)


def concurrency_section() -> Section:
    runs: dict[str, list[tuple[Counter[str], float]]] = {}
    cases = {
        "sync chain": (CHAIN, {"steps": STEPS}),
        "async chain": (ASYNC_CHAIN, {"steps": STEPS}),
        "parallel, threads": (PARALLEL, {"steps": STEPS, "kind": "sync"}),
        "parallel, async": (PARALLEL, {"steps": STEPS, "kind": "async"}),
        "one body, threads": (PARALLEL, {"steps": 1, "kind": "sync"}),
        "one body, async": (PARALLEL, {"steps": 1, "kind": "async"}),
    }
    with LocalRuntime(workflows=[chain, async_chain, parallel]) as rt:
        for workflow_name, params in cases.values():  # warm-up: imports, moto, the body pool
            _run(rt, workflow_name, params)
        for _ in range(RUNS):  # alternated, so that drift on the machine falls on every case
            for label, (workflow_name, params) in cases.items():
                runs.setdefault(label, []).append(_run(rt, workflow_name, params))
    median = {label: statistics.median(s for _, s in results) for label, results in runs.items()}
    calls = {label: results[0][0] for label, results in runs.items()}
    floor = STEPS + 2  # a write per step, the lease, the release
    checks: list[Check] = []
    for label in ("sync chain", "async chain", "parallel, threads", "parallel, async"):
        db = _dynamodb(calls[label])
        checks.append(
            Check(
                f"{label}: DynamoDB calls for {STEPS} steps (after the create)",
                db,
                f"= {floor} (a write per step + lease + release)",
                db == floor,
                ", ".join(
                    f"{op} {n}" for op, n in sorted(calls[label].items()) if op.startswith("dynamodb.")
                ),
            )
        )
        checks.append(
            Check(f"{label}: reads per step", _reads(calls[label]) / STEPS, "= 0", _reads(calls[label]) == 0)
        )
    ratio = median["async chain"] / median["sync chain"]
    checks.append(
        Check(
            "async chain: time per step, as a ratio to the sync chain's",
            round(ratio, 2),
            "<= 1.5",
            ratio <= 1.5,
            f"medians of {RUNS} runs each, alternated on one stack",
        )
    )
    for kind in ("threads", "async"):
        wall = median[f"parallel, {kind}"] / median[f"one body, {kind}"]
        checks.append(
            Check(
                f"parallel, {kind}: wall time of {STEPS} bodies of {IO_SECONDS} s, as a ratio to one alone",
                round(wall, 2),
                "<= 2 (run one after the other: about 10)",
                wall <= 2,
                f"medians of {RUNS} runs; one body alone takes {median[f'one body, {kind}']:.2f} s in all",
            )
        )
    data = {
        "median_seconds": {k: round(v, 4) for k, v in median.items()},
        "calls": {k: dict(v) for k, v in calls.items()},
    }
    return Section(
        f"9. Async workflows: a {STEPS}-step async chain and a {STEPS}-way parallel step, by the sync one",
        checks,
        data,
    )
