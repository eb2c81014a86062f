"""Checks against targets, the printed report, and results.json."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Check:
    """One figure. ``passed`` is None for a figure reported for information, with no target."""

    name: str
    value: float
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "PASS" if self.passed else "FAIL"


@dataclass
class Section:
    title: str
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw figures for results.json only


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    found |= {name: version(name) for name in ("boto3", "botocore", "moto", "aws-lambda-powertools")}
    return found | {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}


def _value(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def render(sections: list[Section]) -> str:
    lines: list[str] = []
    for section in sections:
        lines += ["", section.title]
        for c in section.checks:
            target = f"target {c.target}" if c.target else ""
            lines.append(f"  {c.verdict:<4}  {c.name:<58} {_value(c.value):>6}  {target}".rstrip())
            if c.note:
                lines.append(f"{'':8}{c.note}")
    failed = [c.name for s in sections for c in s.checks if c.passed is False]
    lines += ["", f"{len(failed)} target(s) missed" + (": " + "; ".join(failed) if failed else "")]
    return "\n".join(lines)


def write_results(header: dict[str, Any], sections: list[Section]) -> Path:
    doc = header | {
        "sections": [
            {"title": s.title, "checks": [asdict(c) | {"verdict": c.verdict} for c in s.checks]} | s.data
            for s in sections
        ]
    }
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    return RESULTS
