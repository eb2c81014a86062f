"""Run every benchmark, print the report and write bench/results.json."""

from __future__ import annotations

import time

import bench  # noqa: F401 - sets POWERTOOLS_LOG_LEVEL before the framework is imported
from bench.counts import chain_section, sleep_section
from bench.report import render, versions, write_results
from bench.sleeps import sleeps_section
from bench.throughput import throughput_section


def main() -> None:
    started = time.perf_counter()
    found = versions()
    print("Lambda Workflows benchmark: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    print("AWS calls are counted by botocore before-call hooks (LocalRuntime.aws_calls).")
    print("Steps/s are comparable only within one run: compare them through the ratio to the floor.")
    sections = [chain_section(), sleep_section(), sleeps_section(), throughput_section()]
    print(render(sections))
    elapsed = time.perf_counter() - started
    path = write_results({"versions": found, "elapsed_seconds": round(elapsed, 1)}, sections)
    print(f"bench took {elapsed:.1f} s; results written to {path.relative_to(path.parents[1])}")


if __name__ == "__main__":
    main()
