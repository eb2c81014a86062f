"""Run every benchmark section in order, print the report, write bench/results.json and
docs/performance.md.

``python -m bench`` runs them all; ``python -m bench chain history`` runs only the named ones, and
replaces only those in results.json (the sections of an earlier run stay). Exit status: 0, or 1 if a
section crashed (the others still run and are written).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import traceback

import bench  # noqa: F401 - sets POWERTOOLS_LOG_LEVEL before the framework is imported
from bench.report import Section, render, run_header, write_results

# (key, module, function), in the order of issue 6. Sections whose module has not landed yet are
# reported as not available rather than failing the run.
SECTIONS = (
    ("chain", "bench.throughput", "chain_section"),
    ("sleep", "bench.counts", "sleep_section"),
    ("sleeps", "bench.sleeps", "sleeps_section"),
    ("retry", "bench.retry", "retry_section"),
    ("history", "bench.history", "history_section"),
    ("payload", "bench.payload", "payload_section"),
    ("cost", "bench.cost", "cost_section"),
    ("coldstart", "bench.coldstart", "coldstart_section"),
    ("concurrency", "bench.concurrency", "concurrency_section"),
    ("children", "bench.children", "children_section"),
    ("fanout", "bench.fanout", "fanout_section"),
    ("fanout-dev", "bench.fanout_dev", "fanout_dev_section"),
    ("triggers", "bench.triggers", "triggers_section"),
    ("limits", "bench.limits", "limits_section"),
    ("schedules", "bench.schedules", "schedules_section"),
)


def run_section(key: str, module: str, function: str) -> Section:
    """The section's result, with ``key``, ``status`` and ``run_seconds`` set; never raises an Exception."""
    started = time.perf_counter()
    section = _run(key, module, function)
    section.key, section.run_seconds = key, round(time.perf_counter() - started, 1)
    print(f"[{key}] {section.status}, {section.run_seconds} s", file=sys.stderr, flush=True)
    return section


def _stub(key: str, status: str, reason: str) -> Section:
    section = Section(f"{key}: section {status}", data={"reason": reason})
    section.status = status
    return section


def _run(key: str, module: str, function: str) -> Section:
    if importlib.util.find_spec(module) is None:
        return _stub(key, "not available", f"{module} does not exist yet")
    try:
        run = getattr(importlib.import_module(module), function, None)
        if run is None:
            return _stub(key, "not available", f"{module} has no {function}() yet")
        section = run()
    except Exception as exc:  # one broken section must not cost the others their results
        traceback.print_exc()
        return _stub(key, "failed", f"{module}.{function}() raised {type(exc).__name__}: {exc}")
    if not isinstance(section, Section):
        return _stub(key, "failed", f"{module}.{function}() returned {type(section).__name__}, not a Section")
    return section


def main(argv: list[str]) -> int:
    known = [key for key, _, _ in SECTIONS]
    unknown = [a for a in argv if a not in known]
    if unknown:
        print(f"unknown section(s) {unknown}; known: {' '.join(known)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    header = run_header()
    print(
        "Lambda Workflows benchmark: " + ", ".join(f"{k} {v}" for k, v in header["versions"].items()),
        flush=True,
    )
    print("AWS calls are counted by botocore before-call hooks (LocalRuntime.aws_calls).")
    print("Steps/s are comparable only within one run: compare them through the ratio to the floor.")
    sections = [run_section(*s) for s in SECTIONS if not argv or s[0] in argv]
    print(render(sections))
    elapsed = time.perf_counter() - started
    header |= {"elapsed_seconds": round(elapsed, 1), "sections_all": known}
    path = write_results(header, sections, merge=bool(argv))
    print(f"bench took {elapsed:.1f} s; results written to {path.relative_to(path.parents[1])}")
    from bench import perfdoc

    print(f"report written to {perfdoc.write().relative_to(perfdoc.ROOT)}")
    return 1 if any(s.status == "failed" for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
