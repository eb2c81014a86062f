"""`make bench-peers`, the batch workloads: ``map`` and ``parallel`` on the AWS durable test runner and ours.

- ``map``: one instance mapping ``MAP_ITEMS`` items, each item one step returning ``{"i": item}``, at
  each of ``CONCURRENCY``. AWS: ``context.map`` with ``MapConfig(max_concurrency=N)``. Ours: a parent
  whose ``step.map`` runs each item as a child instance of the registered workflow ``bench-item``, its
  params ``{"i": item}`` (see ``OUR_MAP_FORM``).
- ``parallel``: ``PARALLEL_INSTANCES`` instances, one after another, of ``BRANCHES`` branches of one
  step each. AWS: ``context.parallel``; ours: ``step.parallel``.

Wall times are kept only as ratios to ours in the same round (a peer's wall over ours, so > 1 is slower
than ours). Ours also gives counted figures: worker invocations and DynamoDB calls per item, from
``LocalRuntime``'s botocore ``before-call`` counts of the timed runs themselves. The peers are imported
inside functions: this module imports in the main venv, where they are not installed.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from framework import Step, WorkflowEvent, workflow

MAP_ITEMS, CONCURRENCY, WARMUP_ITEMS = 1000, (10, 100), 100
PARALLEL_INSTANCES, BRANCHES, WARMUP_INSTANCES = 100, 3, 10
WORKER = "WorkerFunction"  # the worker's logical id in template.yaml
ITEM, MAP, PARALLEL = "bench-item", "bench-map", "bench-parallel"
# How our map runs its items: "workflow" (a child instance per item, in its own invocations) or
# "in-process" (a child scope per item, inside the parent's invocation).
OUR_MAP_FORM = "workflow"


def _body(i: Any) -> dict[str, Any]:
    return {"i": i}


@workflow(ITEM)
async def item_flow(event: WorkflowEvent, step: Step) -> Any:
    """One map item: its params are ``{"i": item}`` (a workflow's params are a JSON object)."""
    item = event.payload["i"]
    return await step.do("body", lambda: _body(item))


@workflow(MAP)
async def map_flow(event: WorkflowEvent, step: Step) -> int:
    """``step.map`` over ``range(items)`` at ``max_concurrency``; returns how many results came back."""
    params = event.payload
    items = list(range(params["items"]))
    if params["form"] == "workflow":
        objects = [{"i": item} for item in items]
        batch = await step.map("items", objects, ITEM, max_concurrency=params["max_concurrency"])
    else:

        async def one(step: Step, item: int, index: int) -> Any:
            return await step.do("body", lambda: _body(item))

        batch = await step.map("items", items, one, max_concurrency=params["max_concurrency"])
    results = batch.get_results()
    if results[:1] != [{"i": 0}]:
        raise ValueError(f"map results start {results[:1]!r}, not [{{'i': 0}}]")
    return len(results)


@workflow(PARALLEL)
async def parallel_flow(event: WorkflowEvent, step: Step) -> int:
    """``BRANCHES`` branches of one step each."""

    def branch(k: int) -> Callable[[Step], Any]:
        async def run(step: Step) -> Any:
            return await step.do("body", lambda: _body(k))

        return run

    batch = await step.parallel("branches", [branch(k) for k in range(event.payload["branches"])])
    return len(batch.get_results())


@dataclass
class Measured:
    """One timed run: wall seconds, and for ours the counted AWS calls and invocations."""

    wall: float
    calls: Counter[str] = field(default_factory=Counter)
    invocations: int = 0


Run = Callable[[int, int], Measured]  # (size, max_concurrency) -> one run on fresh state


def ours_map() -> Run:
    from bench.peers import Stopwatch
    from framework.local import LocalRuntime

    def run(items: int, concurrency: int) -> Measured:
        params = {"items": items, "max_concurrency": concurrency, "form": OUR_MAP_FORM}
        with LocalRuntime(workflows=[item_flow, map_flow]) as rt:
            with Stopwatch() as watch:
                handle = rt.client.create(MAP, params, id="bench-map")
                rt.run_until_idle()
            calls, invocations = rt.aws_calls.copy(), rt.invocations[WORKER]
            status = handle.status()  # read after counting
        if status.status != "complete" or status.output != items:
            raise RuntimeError(
                f"ours: the map ended {status.status} with {status.output!r} results: {status.error}"
            )
        return Measured(watch.wall, calls, invocations)

    return run


def ours_parallel() -> Run:
    from bench.peers import Stopwatch
    from framework.local import LocalRuntime

    def run(instances: int, _: int) -> Measured:
        with LocalRuntime(workflows=[parallel_flow]) as rt:
            with Stopwatch() as watch:
                handles = [
                    rt.client.create(PARALLEL, {"branches": BRANCHES}, id=f"bench-{n}")
                    for n in range(instances)
                ]
                rt.run_until_idle()
            calls, invocations = rt.aws_calls.copy(), rt.invocations[WORKER]
            bad = [h.id for h in handles if h.status().output != BRANCHES]  # read after counting
        if bad:
            raise RuntimeError(
                f"ours: {len(bad)} parallel instances did not complete with {BRANCHES} results"
            )
        return Measured(watch.wall, calls, invocations)

    return run


def aws_map() -> Run:
    from aws_durable_execution_sdk_python.config import MapConfig
    from aws_durable_execution_sdk_python.context import DurableContext
    from aws_durable_execution_sdk_python.execution import InvocationStatus, durable_execution
    from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

    from bench.peers import Stopwatch

    def one(context: DurableContext, item: int, index: int, items: Any) -> Any:
        return context.step(lambda _step_context: _body(item), name="body")

    @durable_execution
    def parent(event: dict[str, int], context: DurableContext) -> int:
        config = MapConfig(max_concurrency=event["max_concurrency"])
        batch = context.map(list(range(event["items"])), one, name="items", config=config)
        return len(batch.get_results())

    def run(items: int, concurrency: int) -> Measured:
        event = json.dumps({"items": items, "max_concurrency": concurrency})
        with DurableFunctionTestRunner(handler=parent) as runner, Stopwatch() as watch:
            result = runner.run(input=event, execution_name="bench-map", execution_timeout=900)
        if result.status is not InvocationStatus.SUCCEEDED or json.loads(result.result) != items:
            raise RuntimeError(f"AWS runner: the map ended {result.status} with {result.result!r} results")
        return Measured(watch.wall)

    return run


def aws_parallel() -> Run:
    from aws_durable_execution_sdk_python.context import DurableContext
    from aws_durable_execution_sdk_python.execution import InvocationStatus, durable_execution
    from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

    from bench.peers import Stopwatch

    def branch(k: int) -> Callable[[DurableContext], Any]:
        return lambda context: context.step(lambda _step_context: _body(k), name="body")

    @durable_execution
    def parent(event: dict[str, int], context: DurableContext) -> int:
        batch = context.parallel([branch(k) for k in range(event["branches"])], name="branches")
        return len(batch.get_results())

    def run(instances: int, _: int) -> Measured:
        event = json.dumps({"branches": BRANCHES})
        with DurableFunctionTestRunner(handler=parent) as runner, Stopwatch() as watch:
            results = [runner.run(input=event, execution_name=f"bench-{n}") for n in range(instances)]
        bad = [r for r in results if r.status is not InvocationStatus.SUCCEEDED or r.result != str(BRANCHES)]
        if bad:
            raise RuntimeError(f"AWS runner: {len(bad)} parallel executions did not succeed with {BRANCHES}")
        return Measured(watch.wall)

    return run


NOTES = {
    "map": f"ours runs each item as a child instance of the registered workflow {ITEM!r}, in invocations of "
    "its own"
    if OUR_MAP_FORM == "workflow"
    else "ours runs each item as a child scope inside the parent's invocation (the in-process form, "
    "step.map with a function); the AWS runner runs each in a child context, on threads",
    "parallel": "one instance after another, each branch one step; the AWS runner runs branches on threads, "
    "ours in an async workflow",
}
AWS_LABEL = "AWS durable test runner: in-memory store"
OURS_LABEL = "ours: LocalRuntime, in-process moto"
# workload -> (size, warm-up size, concurrencies, what a unit is, {system: (label, loader)})
WORKLOADS: dict[str, tuple[int, int, tuple[int, ...], str, dict[str, tuple[str, Callable[[], Run]]]]] = {
    "map": (
        MAP_ITEMS,
        WARMUP_ITEMS,
        CONCURRENCY,
        "item",
        {"ours": (OURS_LABEL, ours_map), "aws": (AWS_LABEL, aws_map)},
    ),
    "parallel": (
        PARALLEL_INSTANCES,
        WARMUP_INSTANCES,
        (0,),  # every branch at once, on both
        "instance",
        {"ours": (OURS_LABEL, ours_parallel), "aws": (AWS_LABEL, aws_parallel)},
    ),
}


# -- pure: the figures from the rounds ---------------------------------------------------------------


def spread(values: list[float], digits: int = 3) -> dict[str, Any]:
    """``values`` to ``digits`` significant figures (a ratio of 0.0123 keeps its digits), with their
    median, min and max."""

    def sig(v: float) -> float:
        return float(f"{v:.{digits}g}")

    return {
        "per_round": [sig(v) for v in values],
        "median": sig(statistics.median(values)),
        "min": sig(min(values)),
        "max": sig(max(values)),
    }


def over_ours(ours: list[float], theirs: list[float]) -> dict[str, Any]:
    """Their wall time over ours, round by round (both ran in the same round), as ``spread``."""
    if len(ours) != len(theirs) or not ours:
        raise ValueError(f"rounds do not pair: {len(ours)} of ours, {len(theirs)} of theirs")
    return spread([t / o for o, t in zip(ours, theirs, strict=True)])


def per_unit(runs: list[Measured], units: int) -> dict[str, Any]:
    """Ours' counted figures per unit (item or instance), the worst round's, with every round's when they
    differ: the engine's look for pause or terminate (a GetItem) comes once per control-check interval
    of running time, so a slow round makes more calls."""
    dynamodb = [sum(n for op, n in r.calls.items() if op.startswith("dynamodb.")) / units for r in runs]
    invocations = [r.invocations / units for r in runs]
    worst = max(runs, key=lambda r: sum(n for op, n in r.calls.items() if op.startswith("dynamodb.")))
    found: dict[str, Any] = {
        "dynamodb_calls_per_unit": round(max(dynamodb), 3),
        "worker_invocations_per_unit": round(max(invocations), 3),
        "calls_per_unit": {op: round(n / units, 3) for op, n in sorted(worst.calls.items()) if n},
    }
    if len(set(dynamodb)) > 1:
        found["dynamodb_calls_per_unit_per_round"] = [round(v, 3) for v in dynamodb]
    if len(set(invocations)) > 1:
        found["worker_invocations_per_unit_per_round"] = [round(v, 3) for v in invocations]
    return found


def case_figures(walls: dict[str, list[float]], counted: list[Measured], units: int) -> dict[str, Any]:
    """One case's figures: each system's wall over ours per round, and ours' counts per unit. A system
    with no rounds (it failed, or is missing) is left out of the ratios."""
    figures: dict[str, Any] = {}
    ours = walls.get("ours", [])
    for key, theirs in walls.items():
        if key != "ours" and ours and len(theirs) == len(ours):
            figures[key] = {"wall_over_ours": over_ours(ours, theirs)}
    if counted:
        figures["ours"] = per_unit(counted, units)
    return figures


# -- running -----------------------------------------------------------------------------------------


def measure(name: str, runs: int) -> dict[str, Any]:
    """One workload: load its systems, one warm-up round, then ``runs`` rounds, each running every case
    on every system in an order rotated round by round. Returns its part of peers.json."""
    from bench.peers import _short

    size, warmup, concurrencies, unit, systems = WORKLOADS[name]
    loaded: dict[str, Run] = {}
    entries: dict[str, dict[str, Any]] = {}
    for key, (label, load) in systems.items():
        entries[key] = {"label": label}
        try:
            loaded[key] = load()
        except Exception as exc:  # a missing or broken peer is a result, not a crash
            entries[key]["unavailable"] = _short(exc)
    if "ours" not in loaded:
        return {"systems": entries, "cases": []}
    walls = {c: {k: [] for k in loaded} for c in concurrencies}
    counted: dict[int, list[Measured]] = {c: [] for c in concurrencies}
    for round_no in range(runs + 1):
        n = size if round_no else warmup
        for concurrency in concurrencies:
            keys = list(loaded)
            shift = round_no % max(len(keys), 1)
            for key in keys[shift:] + keys[:shift]:
                try:
                    got = loaded[key](n, concurrency)
                except Exception as exc:
                    entries[key]["unavailable"] = f"failed in round {round_no or 'warm-up'}: {_short(exc)}"
                    del loaded[key]
                    for by_key in walls.values():
                        by_key.pop(key, None)
                    continue
                if round_no:
                    walls[concurrency][key].append(got.wall)
                    if key == "ours":
                        counted[concurrency].append(got)
                print(
                    f"  {name} round {round_no or 'warm-up'}: {key:<4} c={concurrency:<3} {got.wall:7.2f} s",
                    flush=True,
                )
    cases = []
    for concurrency in concurrencies:
        case: dict[str, Any] = {"max_concurrency": concurrency or "all", unit + "s": size}
        if "ours" in loaded:
            case |= case_figures(walls[concurrency], counted[concurrency], size)
        cases.append(case)
    doc = {"unit": unit, "size": size, "warmup": warmup, "runs": runs, "systems": entries, "cases": cases}
    return doc | ({"note": NOTES[name]} if name in NOTES else {})


def print_workload(name: str, doc: dict[str, Any]) -> None:
    """The workload's figures, one line a case and system."""
    for entry in doc["systems"].values():
        if "unavailable" in entry:
            print(f"  {entry['label']}: not measured: {entry['unavailable']}")
    unit = doc.get("unit", "unit")
    for case in doc["cases"]:
        head = f"  {name}, max_concurrency {case['max_concurrency']}:"
        for key, figures in case.items():
            if isinstance(figures, dict) and "wall_over_ours" in figures:
                ratio = figures["wall_over_ours"]
                print(f"{head} {key} wall / ours {ratio['median']} (min {ratio['min']}, max {ratio['max']})")
        ours = case.get("ours")
        if ours:
            print(
                f"{head} ours {ours['dynamodb_calls_per_unit']} DynamoDB calls and "
                f"{ours['worker_invocations_per_unit']} worker invocations per {unit}"
            )
