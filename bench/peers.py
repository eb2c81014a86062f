"""`make bench-peers`: the chain workload on DBOS, the AWS durable functions test runner and ours; the
map and parallel workloads (bench/peers_map.py) on the AWS runner and ours.

Runs only in ``.venv-peers``: the peers are imported lazily here and nowhere else, so ``make bench``
never needs them. A measured run is ``INSTANCES`` instances of a ``STEPS``-step chain, one instance after
another, each step returning ``{"i": i}`` and checkpointed as the system does by default. Set-up (fresh
store, engine launch) is untimed; starting the instances and running them to completion is timed. One
discarded warm-up round (``WARMUP_INSTANCES`` instances: imports, caches), then ``RUNS`` rounds, each
running every system once, in an order rotated round by round. Writes ``bench/peers.json``. A peer that
cannot be imported, or fails, is reported as not measured with the reason; the exit status is non-zero
only if the script itself crashes.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# Fake credentials before boto3 is imported: nothing here may reach real AWS.
os.environ |= {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

RESULTS = Path(__file__).with_name("peers.json")
INSTANCES, STEPS, RUNS = 100, 10, 3
WARMUP_INSTANCES = 10


class Stopwatch:
    """Wall and CPU seconds of the ``with`` block. CPU is the whole process's, peers' background threads
    included: it shows what a system costs when, as here, other jobs compete for the 2 cores."""

    def __enter__(self) -> Stopwatch:
        gc.collect()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


Run = Callable[[int], Stopwatch]  # one run on fresh state: the time of that many instances x STEPS steps


def ours() -> Run:
    """LocalRuntime on a fresh in-process moto per run and the chain of ``bench/workload.py``, timed as
    in ``bench/throughput.py``: the creates (a PutItem and an SQS send each), then ``run_until_idle``."""
    from bench.workload import CHAIN, chain
    from framework.local import LocalRuntime

    def run(instances: int) -> Stopwatch:
        with LocalRuntime(workflows=[chain]) as rt:
            with Stopwatch() as watch:
                handles = [
                    rt.client.create(CHAIN, {"steps": STEPS}, id=f"bench-{n}") for n in range(instances)
                ]
                rt.run_until_idle()
            unfinished = [h.id for h in handles if h.status().status != "complete"]
        if unfinished:
            raise RuntimeError(f"ours left {len(unfinished)} instances unfinished")
        return watch

    return run


def dbos() -> Run:
    """DBOS with a SQLite system database in a fresh temp dir per run; every step's output is written to
    SQLite before the next step starts (DBOS's default, and its durability guarantee)."""
    from dbos import DBOS, SetWorkflowID

    @DBOS.step()
    def body(i: int) -> dict[str, int]:
        return {"i": i}

    @DBOS.workflow()
    def chain(steps: int) -> int:
        for i in range(steps):
            body(i)
        return steps

    def run(instances: int) -> Stopwatch:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/dbos.sqlite"
            # WARNING only hides DBOS's launch banner; it logs nothing per step at INFO either.
            DBOS(config={"name": "peers", "system_database_url": url, "log_level": "WARNING"})
            DBOS.launch()
            try:
                with Stopwatch() as watch:
                    for n in range(instances):
                        with SetWorkflowID(f"bench-{n}"):
                            chain(STEPS)
                # Proof that the steps were checkpointed, read back from SQLite (untimed).
                recorded = len(DBOS.list_workflow_steps(f"bench-{instances - 1}"))
            finally:
                DBOS.destroy()
        if recorded != STEPS:
            raise RuntimeError(f"DBOS recorded {recorded} steps, expected {STEPS}")
        return watch

    return run


def aws() -> Run:
    """The AWS durable execution SDK's local test runner with its default (in-memory) store, a fresh
    runner per run; ``runner.run`` starts an execution and blocks until it completes. Measured here: each
    execution also waits about 0.1 s, mostly asleep, for the SDK's checkpoint thread to see its stop signal
    (``_STOP_SIGNAL_POLL_SECONDS``), so this runner's steps/s grows with the steps per instance."""
    from aws_durable_execution_sdk_python.context import DurableContext
    from aws_durable_execution_sdk_python.execution import InvocationStatus, durable_execution
    from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

    def body(i: int) -> Callable[[Any], dict[str, int]]:
        return lambda _step_context: {"i": i}

    @durable_execution
    def chain(event: dict[str, int], context: DurableContext) -> int:
        for i in range(event["steps"]):
            context.step(body(i), name=f"step-{i}")
        return event["steps"]

    def run(instances: int) -> Stopwatch:
        with DurableFunctionTestRunner(handler=chain) as runner, Stopwatch() as watch:
            results = [
                runner.run(input=json.dumps({"steps": STEPS}), execution_name=f"bench-{n}")
                for n in range(instances)
            ]
        bad = [r.status for r in results if r.status is not InvocationStatus.SUCCEEDED]
        if bad or len(results[-1].operations) != STEPS:
            raise RuntimeError(f"AWS runner: {len(bad)} executions not SUCCEEDED, or steps missing")
        return watch

    return run


# key -> (label, distributions whose versions are recorded, loader)
SYSTEMS: dict[str, tuple[str, tuple[str, ...], Callable[[], Run]]] = {
    "ours": ("ours: LocalRuntime, in-process moto", ("lambda-workflows", "boto3", "moto"), ours),
    "dbos": ("DBOS: SQLite system database", ("dbos", "sqlalchemy"), dbos),
    "aws": (
        "AWS durable test runner: in-memory store",
        ("aws-durable-execution-sdk-python-testing", "aws-durable-execution-sdk-python"),
        aws,
    ),
}


def _short(exc: BaseException) -> str:
    if isinstance(exc, PackageNotFoundError):
        return f"{exc.name} is not installed in this venv; `make bench-peers` installs it in .venv-peers"
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def measure(runs: int = RUNS) -> dict[str, Any]:
    """Load every system, then a warm-up round and ``runs`` measured rounds. Returns the peers.json doc."""
    load_before = round(os.getloadavg()[0], 2)
    loaded: dict[str, Run] = {}
    systems: dict[str, dict[str, Any]] = {}
    for key, (label, dists, load) in SYSTEMS.items():
        entry: dict[str, Any] = {"label": label, "versions": {}, "steps_per_s": [], "steps_per_cpu_s": []}
        try:
            entry["versions"] = {d: version(d) for d in dists}
            loaded[key] = load()
        except Exception as exc:  # a missing or broken peer is a result, not a crash
            entry["unavailable"] = _short(exc)
        systems[key] = entry
    for round_no in range(runs + 1):
        keys = list(loaded)
        shift = round_no % max(len(keys), 1)  # rotate, so no system always runs first or last
        for key in keys[shift:] + keys[:shift]:
            instances = INSTANCES if round_no else WARMUP_INSTANCES
            try:
                watch = loaded[key](instances)
            except Exception as exc:
                systems[key]["unavailable"] = f"failed in round {round_no or 'warm-up'}: {_short(exc)}"
                del loaded[key]
                continue
            rate, cpu_rate = instances * STEPS / watch.wall, instances * STEPS / watch.cpu
            if round_no:  # round 0 is the warm-up
                systems[key]["steps_per_s"].append(round(rate, 1))
                systems[key]["steps_per_cpu_s"].append(round(cpu_rate, 1))
            print(
                f"  round {round_no or 'warm-up'}: {key:<4} {rate:7.1f} steps/s, {cpu_rate:7.1f} per CPU-s",
                flush=True,
            )
    for entry in systems.values():
        # A system that failed in any round has no figures: its rounds would not pair with the others'.
        if (rates := entry["steps_per_s"]) and "unavailable" not in entry:
            entry |= {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
            entry["median_steps_per_cpu_s"] = statistics.median(entry["steps_per_cpu_s"])
    return {
        "workload": {"instances": INSTANCES, "steps": STEPS, "runs": runs, "warmup": WARMUP_INSTANCES},
        "versions": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
        | {dist: v for entry in systems.values() for dist, v in entry["versions"].items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        # Other jobs share the machine: the 1-minute load average at the start and the end of the rounds.
        "load_average": [load_before, round(os.getloadavg()[0], 2)],
        "systems": systems,
        "targets": targets(systems),
    }


def targets(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ours >= each peer, on the medians of the same interleaved rounds; n/a if either did not run. Also
    ours/peer round by round: both ran in the same round, so machine load hit them alike."""
    found: dict[str, dict[str, Any]] = {}
    ours = systems["ours"]
    for peer in ("dbos", "aws"):
        theirs = systems[peer]
        if "median" not in ours or "median" not in theirs:
            found[f"ours >= {peer}"] = {"verdict": "n/a"}
            continue
        ratios = [a / b for a, b in zip(ours["steps_per_s"], theirs["steps_per_s"], strict=True)]
        found[f"ours >= {peer}"] = {
            "verdict": "PASS" if ours["median"] >= theirs["median"] else "FAIL",
            "ours_over_peer_per_round": [round(r, 2) for r in ratios],
        }
    return found


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.peers [RUNS] [chain|map|parallel ...]``: the named workloads (all by default);
    those not run keep their figures from the last peers.json."""
    from bench import peers_map

    args = sys.argv[1:] if argv is None else argv
    runs = next((int(a) for a in args if a.isdigit()), RUNS)
    names = [a for a in args if not a.isdigit()] or ["chain", *peers_map.WORKLOADS]
    unknown = set(names) - {"chain", *peers_map.WORKLOADS}
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    previous = _previous()
    if "chain" in names:
        print(
            f"Peers: {INSTANCES} instances x {STEPS} steps, sequential; 1 warm-up + {runs} interleaved rounds"
        )
        doc = measure(runs)
        print_chain(doc)
    else:
        doc = {k: v for k, v in previous.items() if k != "workloads"}
    doc["workloads"] = dict(previous.get("workloads", {}))
    for name in peers_map.WORKLOADS:
        if name in names:
            print(f"\nPeers, {name}: 1 warm-up + {runs} interleaved rounds")
            doc["workloads"][name] = peers_map.measure(name, runs)
            peers_map.print_workload(name, doc["workloads"][name])
            RESULTS.write_text(json.dumps(doc, indent=2) + "\n")  # a long run keeps what it measured
    doc["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    from bench.peers_doc import refresh

    written = refresh()
    print(f"took {doc['elapsed_seconds']} s; written to bench/{RESULTS.name}, and its map and parallel part")
    print(f"to {written.name} (its other parts: `make bench`)")


def _previous() -> dict[str, Any]:
    try:
        found = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def print_chain(doc: dict[str, Any]) -> None:
    print(f"\n{'system':<41} {'median':>7} {'min':>7} {'max':>7}  steps/s {'per CPU-s':>9}  versions")
    for entry in doc["systems"].values():
        pins = ", ".join(f"{d} {v}" for d, v in entry["versions"].items())
        if "median" in entry:
            figures = f"{entry['median']:7.1f} {entry['min']:7.1f} {entry['max']:7.1f}"
            figures += f"         {entry['median_steps_per_cpu_s']:9.1f}"
        else:
            figures = f"{'-':>7} {'-':>7} {'-':>7}         {'-':>9}"
        print(f"{entry['label']:<41} {figures}  {pins}")
        if "unavailable" in entry:
            print(f"{'':41} not measured: {entry['unavailable']}")
    for name, target in doc["targets"].items():
        ratios = target.get("ours_over_peer_per_round")
        note = f"; ours/peer per round {ratios}" if ratios else ""
        print(f"{target['verdict']:<4}  {name} (steps/s medians){note}")


if __name__ == "__main__":
    main()
