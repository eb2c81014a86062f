"""Checks against targets, plots, the printed report, and results.json.

A section returns a ``Section``: its ``checks`` are printed and land in results.json and in
docs/performance.md; ``data`` is raw figures for results.json; ``plots`` are pictures that
``bench.perfdoc`` draws into docs/img/ (a section need not have any).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Check:
    """One figure. ``passed`` is None for a figure reported for information, with no target. When a
    target is missed, ``note`` is what docs/performance.md shows as the reason: say why there."""

    name: str
    value: float
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class Series:
    """One line (or set of bars) of a Plot. ``x`` are numbers, or category labels for bars; ``low`` and
    ``high``, if given, draw a min-max range around each ``y``. ``fit`` fits y = a * x^b by least squares
    on log x and log y, and shows b in the legend."""

    label: str
    x: list[Any]
    y: list[float]
    low: list[float] | None = None
    high: list[float] | None = None
    fit: bool = False


@dataclass(frozen=True)
class Plot:
    """A picture for docs/performance.md, drawn by bench/perfdoc.py to docs/img/<name>.png.
    ``kind`` is "line" or "bar"; ``hlines`` draws a labelled horizontal line at each value (a target)."""

    name: str
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    kind: str = "line"
    log_x: bool = False
    log_y: bool = False
    hlines: dict[str, float] = field(default_factory=dict)
    caption: str = ""


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw figures for results.json only
    plots: list[Plot] = field(default_factory=list)
    # Set by bench/__main__.py: which section this is, "ok", "not available" or "failed", and how long
    # it took.
    key: str = ""
    status: str = "ok"
    run_seconds: float = 0.0


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    """The checked-out commit, with "+ changes" when the work tree differs from it."""
    root = Path(__file__).parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("boto3", "botocore", "moto", "aws-lambda-powertools", "matplotlib"):
        found[name] = _version(name) or "not installed"
    return found | {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu()}",
        "os": platform.platform(terse=True),
    }


def run_header() -> dict[str, Any]:
    """What results.json says about the run: when, on which commit, with which versions."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "versions": versions(),
        # Other work on the machine slows both sides of a ratio, but not always alike: say how busy it was.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _value(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def render(sections: list[Section]) -> str:
    lines: list[str] = []
    for section in sections:
        lines += ["", section.title]
        if section.status != "ok":
            lines.append(f"  {section.status}: {section.data.get('reason', '')}".rstrip(": "))
        for c in section.checks:
            target = f"target {c.target}" if c.target else ""
            lines.append(f"  {c.verdict:<4}  {c.name:<58} {_value(c.value):>6}  {target}".rstrip())
            if c.note:
                lines.append(f"{'':8}{c.note}")
    failed = [c.name for s in sections for c in s.checks if c.passed is False]
    lines += ["", f"{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else "")]
    gaps = [s.key or s.title for s in sections if s.status != "ok"]
    if gaps:
        lines.append(f"{len(gaps)} section(s) not run or failed: {', '.join(gaps)}")
    return "\n".join(lines)


def section_json(s: Section) -> dict[str, Any]:
    checks = [asdict(c) | {"verdict": c.verdict} for c in s.checks]
    meta = {
        "key": s.key,
        "title": s.title,
        "status": s.status,
        "run_seconds": s.run_seconds,
        "checks": checks,
    }
    return s.data | meta | {"plots": [asdict(p) for p in s.plots]}


def write_results(
    header: dict[str, Any], sections: list[Section], path: Path = RESULTS, *, merge: bool = False
) -> Path:
    """Write the run's results. ``merge`` (a run of named sections): the sections of the results
    already there that this run did not run are kept, in their place, so a partial run updates the
    report instead of shrinking it."""
    fresh = [section_json(s) for s in sections]
    if merge and path.exists():
        old = [s for s in json.loads(path.read_text()).get("sections", []) if isinstance(s, dict)]
        by_key = {s["key"]: s for s in fresh}
        kept = [by_key.pop(s.get("key"), s) for s in old]
        fresh = kept + list(by_key.values())
    doc = header | {"sections": fresh}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
