"""docs/performance.md and its plots (docs/img/*.png), from bench/results.json and, when it is there,
bench/peers.json.

Run at the end of ``python -m bench``; ``python -m bench.perfdoc`` writes the doc again from the last
results. Every figure in the doc comes from those two files: none is written here by hand. Plots need
matplotlib (the ``bench`` extra, which ``make bench`` installs); without it the doc says so and goes on.
A section's plots are its ``Plot``s; for sections with none, plots are drawn from well-known key names
in its data (see GUESSES), and the doc says which keys they came from.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
RESULTS = Path(__file__).with_name("results.json")
PEERS = Path(__file__).with_name("peers.json")
DOC = ROOT / "docs" / "performance.md"
IMG = DOC.parent / "img"
PREFIX = "perf-"  # every image this module writes: stale ones with it are removed
MISSED_MARK = "<!-- targets missed: filled by bench/perfdoc.py from each failing Check's note -->"

# Columns that tell apart the rows of one table (one series each), beside any text column.
GROUP_KEYS = ("mode", "every", "resume_every", "variant", "kind", "system", "cache", "snapshot", "label")
MAX_SERIES = 8
# Section key -> (x key names, [(plot name, title, y label, y key pattern)], log-log, fit an exponent)
GUESSES: dict[str, tuple[tuple[str, ...], list[tuple[str, str, str, str]], bool, bool]] = {
    "history": (
        ("n", "steps", "history", "history_length", "length"),
        [
            ("history-read-units", "Total read units against history length n", "read units", r"read_units"),
            ("history-replay-cpu", "Replay CPU against history length n", "CPU seconds", r"cpu|replay"),
        ],
        True,
        True,
    ),
    "payload": (
        ("bytes", "size", "size_bytes", "payload_bytes", "result_bytes"),
        [("payload-write-units", "Write units against step result size", "write units", r"write_units")],
        True,
        False,  # no single power law: results past a size go to S3, leaving a pointer in the table
    ),
}


# -- reading ----------------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing or is not a JSON object."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def peer_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps/s per system from peers.json: ``label``, ``median`` and, when known, ``min``, ``max`` and
    ``unavailable``. Takes ``{"systems": {key: {...}}}`` (bench/peers.py's shape), a list of such
    entries, or ``{name: steps/s}``; skips what it does not recognise."""
    systems = doc.get("systems", doc.get("peers", doc.get("results", doc)))
    if isinstance(systems, list):
        items = [(str(e.get("system") or e.get("name") or e.get("label") or "?"), e) for e in systems]
    elif isinstance(systems, dict):
        items = [(str(k), v) for k, v in systems.items()]
    else:
        return []
    rows = []
    for key, entry in items:
        if _number(entry):
            rows.append({"key": key, "label": key, "median": float(entry)})
            continue
        if not isinstance(entry, dict):
            continue
        row: dict[str, Any] = {"key": key, "label": str(entry.get("label") or key)}
        stats = entry.get("steps_per_s")
        stats = stats if isinstance(stats, dict) else entry
        for name in ("median", "min", "max"):
            if _number(stats.get(name)):
                row[name] = float(stats[name])
        if "median" not in row and _number(entry.get("steps_per_s")):
            row["median"] = float(entry["steps_per_s"])
        if "unavailable" in entry:
            row["unavailable"] = str(entry["unavailable"])
        if "median" in row or "unavailable" in row:
            rows.append(row)
    return rows


def peer_targets(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, verdict, detail) of each target in peers.json."""
    found = []
    targets = doc.get("targets")
    if isinstance(targets, dict):
        for name, target in targets.items():
            if isinstance(target, dict):
                detail = {k: v for k, v in target.items() if k != "verdict"}
                found.append(
                    (str(name), str(target.get("verdict", "?")), json.dumps(detail) if detail else "")
                )
    return found


def peer_checks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """peers.json's targets as Check dicts: ``ours >= <peer>``, valued ours / peer on steps/s medians."""
    medians = {r["key"]: r["median"] for r in peer_rows(doc) if "median" in r}
    found = []
    for name, verdict, detail in peer_targets(doc):
        peer = name.rsplit(">=", 1)[-1].strip()
        ratio = medians["ours"] / medians[peer] if "ours" in medians and medians.get(peer) else None
        found.append(
            {
                "name": f"steps/s, {name} (make bench-peers)",
                "value": ratio if ratio is not None else "n/a",
                "target": ">= 1 (ours / peer)",
                "verdict": verdict,
                "note": f"from bench/peers.json: {detail}" if detail else "from bench/peers.json",
            }
        )
    return found


def _records(node: Any, path: str = "") -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every table in ``node``: a list of dicts, or a dict of dicts (each keyed row gets ``_key``)."""
    if isinstance(node, list):
        rows = [r for r in node if isinstance(r, dict)]
        if rows and len(rows) == len(node):
            yield path, rows
        for i, item in enumerate(node):
            yield from _records(item, f"{path}[{i}]")
    elif isinstance(node, dict):
        values = list(node.values())
        if values and all(isinstance(v, dict) for v in values):
            yield path, [v | {"_key": k} for k, v in node.items()]
        for key, value in node.items():
            if key != "plots":
                yield from _records(value, f"{path}.{key}" if path else str(key))


def _stat(value: Any) -> tuple[float, float | None, float | None] | None:
    """A figure as (value, min, max): a number, a dict with a median, or a list of runs."""
    if _number(value):
        return float(value), None, None
    if isinstance(value, dict) and _number(value.get("median")):
        low, high = value.get("min"), value.get("max")
        return float(value["median"]), low if _number(low) else None, high if _number(high) else None
    if isinstance(value, list) and value and all(_number(v) for v in value):
        return float(statistics.median(value)), float(min(value)), float(max(value))
    return None


def _groups(rows: list[dict[str, Any]], x_key: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Split a table so that each x appears once per group, by the columns that tell its rows apart
    (``mode``, ``every``, any text column...); [] if no such split exists."""
    candidates = [
        k
        for k in rows[0]
        if k not in (x_key, "_key", "_x")
        and (k in GROUP_KEYS or isinstance(rows[0][k], str))
        and all(isinstance(r.get(k), str | int) and not isinstance(r.get(k), bool) for r in rows)
    ]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {(): rows}
    for k in candidates:
        if all(len({r[x_key] for r in g}) == len(g) for g in groups.values()):
            break
        split: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for label, group in groups.items():
            for r in group:
                split.setdefault((*label, f"{k}={r[k]}"), []).append(r)
        groups = split
    if not all(len({r[x_key] for r in g}) == len(g) for g in groups.values()):
        return []
    return [
        (", ".join(label), sorted(g, key=lambda r: r[x_key])) for label, g in groups.items() if len(g) >= 2
    ]


def guessed_plots(key: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Plots (as Plot dicts) drawn from well-known key names in a section's data: for each table with an
    x column, split by the columns that tell its rows apart, one series per y column whose path matches
    the plot's pattern."""
    if key not in GUESSES:
        return []
    x_keys, wanted, loglog, fit = GUESSES[key]
    tables = []
    for path, found in _records(data):
        rows = found
        x_key = next((k for k in x_keys if all(_number(r.get(k)) for r in rows)), None)
        if x_key is None and all(re.fullmatch(r"\d+", str(r.get("_key", ""))) for r in rows):
            rows, x_key = [r | {"_x": int(r["_key"])} for r in rows], "_x"
        if x_key is not None:
            tables += [(path, x_key, label, group) for label, group in _groups(rows, x_key)]
    plots = []
    for name, title, y_label, pattern in wanted:
        series = []
        dropped = 0
        for path, x_key, group_label, rows in tables:
            for y_key in rows[0]:
                where = f"{path}.{y_key}" if path else y_key
                if y_key in (x_key, "_key", "_x") or y_key in GROUP_KEYS or not re.search(pattern, where):
                    continue
                stats = [_stat(r.get(y_key)) for r in rows]
                if any(s is None for s in stats):
                    continue
                # A log axis has no room for 0: such points are left off, and the caption says so.
                points = [
                    (r[x_key], s)
                    for r, s in zip(rows, stats, strict=True)
                    if s and not (loglog and s[0] <= 0)
                ]
                dropped += len(rows) - len(points)
                if len(points) < 2:
                    continue
                ranged = all(s[1] is not None and s[2] is not None for _, s in points)
                series.append(
                    {
                        "x_key": "n" if x_key == "_x" else x_key,
                        "label": (f"{path}: {y_key}" if path else y_key)
                        + (f" ({group_label})" if group_label else ""),
                        "x": [x for x, _ in points],
                        "y": [s[0] for _, s in points],
                        "low": [s[1] for _, s in points] if ranged else None,
                        "high": [s[2] for _, s in points] if ranged else None,
                        "fit": fit,
                    }
                )
        if series:
            shown = series[:MAX_SERIES]
            caption = (
                "Drawn from the section's data by key name (the section has no Plot of its own): "
                + "; ".join(s["label"] for s in shown)
                + (f"; {len(series) - len(shown)} more series left out." if len(series) > len(shown) else ".")
                + (
                    f" {dropped} points at 0 are left off the log scale (a series needs 2 to be drawn)."
                    if dropped
                    else ""
                )
            )
            plots.append(
                {
                    "name": name,
                    "title": title,
                    "x_label": " / ".join(dict.fromkeys(s.pop("x_key") for s in series)),
                    "y_label": y_label,
                    "series": shown,
                    "kind": "line",
                    "log_x": True,
                    "log_y": loglog,
                    "hlines": {},
                    "caption": caption,
                }
            )
    return plots


def exponent(x: list[float], y: list[float]) -> float | None:
    """b of y = a * x^b, least squares on log x and log y; None if it cannot be fitted."""
    points = [(math.log(a), math.log(b)) for a, b in zip(x, y, strict=False) if a > 0 and b > 0]
    if len(points) < 2:
        return None
    mx = sum(p[0] for p in points) / len(points)
    my = sum(p[1] for p in points) / len(points)
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var


# -- drawing ----------------------------------------------------------------------------------------


def draw(plot: dict[str, Any], path: Path) -> None:
    """Draw one Plot dict to a PNG at ``path`` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = plot.get("series") or []
    if plot.get("kind") == "barh":  # one series, long category names: one bar per row
        s = series[0]
        fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.55 * len(s["y"])), dpi=110)
        rows = range(len(s["y"]))
        errors = None
        if s.get("low") and s.get("high"):
            errors = [
                [y - lo for y, lo in zip(s["y"], s["low"], strict=True)],
                [hi - y for y, hi in zip(s["y"], s["high"], strict=True)],
            ]
        bars = ax.barh(rows, s["y"], xerr=errors, capsize=3, color=[f"C{i}" for i in rows])
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=4)
        ax.margins(x=0.15)  # room for the labels past the longest bar
        ax.set_yticks(rows, [textwrap.fill(str(c), 34) for c in s["x"]], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(plot.get("title", ""), fontsize=10)
        ax.set_xlabel(plot.get("y_label", ""))
        ax.grid(True, axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    if plot.get("kind") == "bar":
        categories = [str(c) for c in series[0]["x"]] if series else []
        width = 0.8 / max(1, len(series))
        for i, s in enumerate(series):
            xs = [k + (i - (len(series) - 1) / 2) * width for k in range(len(s["y"]))]
            errors = None
            if s.get("low") and s.get("high"):
                errors = [
                    [y - lo for y, lo in zip(s["y"], s["low"], strict=True)],
                    [hi - y for y, hi in zip(s["y"], s["high"], strict=True)],
                ]
            bars = ax.bar(xs, s["y"], width, yerr=errors, capsize=3, label=s["label"])
            ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
        ax.set_xticks(range(len(categories)), categories, fontsize=8)
    else:
        for s in series:
            label = s["label"]
            if s.get("fit"):
                b = exponent(s["x"], s["y"])
                label += f" (fitted exponent {b:.2f})" if b is not None else ""
            if s.get("low") and s.get("high"):
                errors = [
                    [y - lo for y, lo in zip(s["y"], s["low"], strict=True)],
                    [hi - y for y, hi in zip(s["y"], s["high"], strict=True)],
                ]
                ax.errorbar(s["x"], s["y"], yerr=errors, marker="o", capsize=3, label=label)
            else:
                ax.plot(s["x"], s["y"], marker="o", label=label)
        if plot.get("log_x"):
            ax.set_xscale("log")
        if plot.get("log_y"):
            ax.set_yscale("log")
    for i, (label, y) in enumerate((plot.get("hlines") or {}).items()):
        ax.axhline(y, linestyle="--", linewidth=1, color=f"C{len(series) + i + 1}", label=label)
    ax.set_title(plot.get("title", ""), fontsize=10)
    ax.set_xlabel(plot.get("x_label", ""))
    ax.set_ylabel(plot.get("y_label", ""))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def peers_plot(results: dict[str, Any], peers: list[dict[str, Any]], workload: Any) -> dict[str, Any] | None:
    """Steps/s of the chain: ours and the floor (make bench), beside each peer (make bench-peers)."""
    instances = workload.get("instances", 100) if isinstance(workload, dict) else 100
    steps = workload.get("steps", 10) if isinstance(workload, dict) else 10
    labels, y, low, high = [], [], [], []
    chain = _chain_size(results, instances, steps)
    if chain:
        for label, key in (
            ("ours (make bench)", "framework_steps_per_s"),
            ("floor (make bench)", "floor_steps_per_s"),
        ):
            labels.append(label)
            y.append(chain[key]["median"])
            low.append(chain[key]["min"])
            high.append(chain[key]["max"])
    for row in peers:
        if "median" in row:
            labels.append(f"{row['label']} (make bench-peers)")
            y.append(row["median"])
            low.append(row.get("min", row["median"]))
            high.append(row.get("max", row["median"]))
    if len(labels) < 2:
        return None
    return {
        "name": "peers-steps-per-s",
        "title": f"Steps/s on the {instances} x {steps} chain (median, min-max)",
        "x_label": "",
        "y_label": "steps/s",
        "series": [{"label": "steps/s", "x": labels, "y": y, "low": low, "high": high, "fit": False}],
        "kind": "barh",
        "hlines": {},
        "caption": "",
    }


def _chain_size(results: dict[str, Any], instances: int, steps: int) -> dict[str, Any] | None:
    for section in results.get("sections", []):
        chain = section.get("chain") if isinstance(section, dict) else None
        if isinstance(chain, dict):
            for size in chain.get("sizes", []):
                if size.get("instances") == instances and size.get("steps") == steps:
                    return dict(size)
    return None


# -- writing ----------------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def fmt(value: Any) -> str:
    if isinstance(value, bool) or not _number(value):
        return _cell(value)
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return f"{value:.3g}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


class _Images:
    """Draws plots into ``folder``; remembers what it wrote and why it could not draw."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: list[Path] = []
        self.problem: str | None = None
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.problem = "matplotlib is not installed (`make bench` installs the `bench` extra)"

    def markdown(self, plot: dict[str, Any]) -> list[str]:
        if self.problem:
            return [f"_Plot {plot.get('name')!r} not drawn: {self.problem}._", ""]
        name = re.sub(r"[^a-z0-9-]+", "-", str(plot.get("name", "plot")).lower()).strip("-")
        path = self.folder / f"{PREFIX}{name}.png"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            draw(plot, path)
        except Exception as exc:  # a malformed Plot must not cost the whole doc
            return [f"_Plot {name!r} not drawn: {type(exc).__name__}: {exc}._", ""]
        self.written.append(path)
        lines = [f"![{_cell(plot.get('title', name))}]({self.folder.name}/{path.name})", ""]
        if plot.get("caption"):
            lines += [str(plot["caption"]), ""]
        return lines

    def prune(self) -> None:
        """Remove images of an earlier run that this one did not draw again."""
        if self.problem or not self.folder.is_dir():
            return
        for old in self.folder.glob(f"{PREFIX}*.png"):
            if old not in self.written:
                old.unlink()


def render(results: dict[str, Any] | None, peers: dict[str, Any] | None, images: _Images) -> str:
    out = [
        "# Performance",
        "",
        "<!-- Generated by bench/perfdoc.py from bench/results.json and bench/peers.json: do not edit "
        "by hand; run `make bench` (or `.venv/bin/python -m bench.perfdoc` to redraw from the last "
        "results). -->",
        "",
    ]
    if results is None:
        return "\n".join([*out, "No results yet: run `make bench`, which writes bench/results.json.", ""])
    sections = [s for s in results.get("sections", []) if isinstance(s, dict)]
    checks = [(s, c) for s in sections for c in s.get("checks", []) if isinstance(c, dict)]
    if peers is not None:
        checks += [({"key": "peers"}, c) for c in peer_checks(peers)]
    targeted = [(s, c) for s, c in checks if c.get("verdict") in ("PASS", "FAIL")]
    missed = [(s, c) for s, c in targeted if c.get("verdict") == "FAIL"]
    versions = results.get("versions", {})
    out += [
        "What Lambda Workflows costs per step, per sleep and per execution, counted on moto against the "
        "floor of its design (the project's cost model, a design note kept outside this repository), and "
        "how fast it runs beside the raw boto3 calls that the same work needs and beside its peers. AWS "
        "calls are counted, not timed; wall times are reported only as ratios to a floor measured in the "
        "same run (the benchmark method of the same design notes).",
        "",
        f"Run of {results.get('date', 'an unknown date')} on commit {results.get('commit', 'unknown')}, "
        f"{results.get('elapsed_seconds', '?')} s: **{len(targeted) - len(missed)} of {len(targeted)} "
        f"targets met**" + (f", {len(missed)} missed (below)." if missed else "."),
        "",
    ]
    ran = {s.get("key") for s in sections}
    skipped = [k for k in results.get("sections_all", []) if k not in ran]
    if skipped:
        out += [f"Not run this time (`python -m bench` with section names): {', '.join(skipped)}.", ""]
    gaps = [s for s in sections if s.get("status", "ok") != "ok"]
    if gaps:
        out += [
            "Sections that did not run: "
            + "; ".join(
                f"{s.get('key') or s.get('title')} ({s.get('status')}: {s.get('reason', '')})" for s in gaps
            )
            + ".",
            "",
        ]
    out += [
        "## Reproduce",
        "",
        "```sh",
        "make bench         # every section; writes bench/results.json, then this file and docs/img/",
        "make bench-peers   # DBOS and the AWS durable functions runner, in .venv-peers: bench/peers.json",
        ".venv/bin/python -m bench chain history   # only the named sections",
        "BENCH_FULL=1 make bench                   # the 100-step chain with all 100 instances",
        ".venv/bin/python -m bench.perfdoc         # this file again, from the last results",
        "```",
        "",
        "Run `make bench-peers` first if you want the peers in this file: `make bench` reads its "
        "bench/peers.json. Timings move with the machine's load: compare figures within one run.",
        "",
        "## Machine and versions",
        "",
        *_table(["", ""], [[k, v] for k, v in versions.items()]),
        "",
    ]
    load = results.get("load_average")
    if isinstance(load, list) and load and all(_number(x) for x in load):
        out.append(f"Load average (1, 5, 15 min) when the run started: {', '.join(fmt(x) for x in load)}.")
        cpus = re.search(r"(\d+) CPUs", str(versions.get("machine", "")))
        if cpus and load[0] > int(cpus.group(1)) / 2:
            out.append(
                "Other work was running on the machine: wall-time ratios are noisier than on an idle one; "
                "the CPU-time ratios beside them are less affected."
            )
        out.append("")
    out += [
        "## How it is measured",
        "",
        "- **Counted calls.** Every AWS call goes through botocore `before-call` hooks and is counted per "
        "service and operation; units and dollars follow from the counts and item sizes.",
        "- **Fresh state.** Every run gets a fresh in-process moto table and queue: moto slows down as they "
        "grow. Sleeps and backoffs run on a virtual clock, so wall time is our own overhead.",
        "- **Floors in the same run.** Each timed benchmark runs the raw boto3 calls that the same work "
        "needs with no framework, alternating with the framework's runs, and reports the ratio. For the "
        "chain, the floor is: " + _chain_floor(sections) + ".",
        "- **Spread.** Timed figures are medians of at least 3 runs, shown with min and max.",
        "",
        "## Targets",
        "",
        *_table(
            ["section", "check", "measured", "target", "verdict"],
            [
                [
                    s.get("key") or "",
                    c.get("name"),
                    fmt(c.get("value")),
                    c.get("target"),
                    f"**{c['verdict']}**",
                ]
                for s, c in targeted
            ],
        ),
        "",
        "## Targets missed",
        "",
        MISSED_MARK,
        "",
    ]
    if missed:
        for s, c in missed:
            out.append(
                f"- **{_cell(c.get('name'))}** ({s.get('key') or s.get('title')}): measured "
                f"{fmt(c.get('value'))}, target {_cell(c.get('target'))}. Why: "
                f"{_cell(c.get('note') or 'the section gives no reason')}"
            )
    else:
        out.append("None in this run." if targeted else "No target was checked in this run.")
    out += ["", "<!-- end of targets missed -->", ""]
    # What the figures alone cannot say: why a target is out of reach, and what would close the gap.
    gaps = Path(__file__).with_name("gaps.md")
    if gaps.exists():
        out += [gaps.read_text().strip(), ""]
    for s in sections:
        out += _section(s, images)
    out += _peers(results, peers, images)
    return "\n".join(out).rstrip() + "\n"


def _chain_floor(sections: list[dict[str, Any]]) -> str:
    for s in sections:
        chain = s.get("chain")
        if isinstance(chain, dict) and chain.get("floor"):
            return str(chain["floor"])
    return "(the chain section did not run)"


def _section(s: dict[str, Any], images: _Images) -> list[str]:
    out = [f"## {_cell(s.get('title', s.get('key', 'section')))}", ""]
    if s.get("status", "ok") != "ok":
        return [*out, f"Section {s.get('status')}: {_cell(s.get('reason', ''))}.", ""]
    chain = s.get("chain")
    if s.get("key") == "chain" and isinstance(chain, dict):
        out += _chain_intro(chain)
    rows = [
        [c.get("name"), fmt(c.get("value")), c.get("target") or "", c.get("verdict"), c.get("note") or ""]
        for c in s.get("checks", [])
        if isinstance(c, dict)
    ]
    if rows:
        out += [*_table(["check", "value", "target", "verdict", "note"], rows), ""]
    plots = [p for p in s.get("plots", []) if isinstance(p, dict)]
    for plot in plots or guessed_plots(str(s.get("key", "")), s):
        out += images.markdown(plot)
    return out


def _spread(s: dict[str, Any]) -> str:
    return f"{fmt(s['median'])} ({fmt(s['min'])} to {fmt(s['max'])})"


def _why_fewer(sizes: list[dict[str, Any]], runs: int) -> str:
    """Why the longest chain ran fewer than 100 instances, in this run's own figures."""
    text = "The 100-step chain runs fewer than 100 instances"
    try:
        long = max(sizes, key=lambda z: z["steps"])
        pair = 10_000 * (
            1 / long["framework_steps_per_s"]["median"] + 1 / long["floor_steps_per_s"]["median"]
        )
        text = (
            f"The 100-step chain runs {long['instances']} instances, not 100: at this run's speed a "
            f"100 x 100 pair (10,000 steps on each side) takes about {pair:.0f} s, {runs} of them "
            f"{runs * pair / 60:.1f} min. Figures per step hold with fewer instances if moto's time per call "
            "does not grow with the table"
        )
        put = [
            (z["instances"] * (z["steps"] + 1), z["ms_per_step"]["ms_per_call"]["floor"]["dynamodb.PutItem"])
            for z in sorted(sizes, key=lambda z: z["instances"] * (z["steps"] + 1))
        ]
        text += ": the floor's PutItem took " + ", ".join(
            f"{ms:.2f} ms in runs that end with {n:,} items" for n, ms in put
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        pass
    return text + ". `BENCH_FULL=1` runs all 100."


def _chain_intro(chain: dict[str, Any]) -> list[str]:
    sizes = chain.get("sizes", [])
    rows = []
    for size in sizes:
        try:
            rows.append(
                [
                    f"{size['instances']} x {size['steps']}",
                    fmt(size["framework_steps_per_s"]["median"]),
                    fmt(size["floor_steps_per_s"]["median"]),
                    _spread(size["ratio"]),
                    _spread(size["cpu_ratio"]) if "cpu_ratio" in size else "-",
                    _spread(size["ms_per_step"]["ratio_calls_at_floor_cost"])
                    if "ms_per_step" in size
                    else "-",
                ]
            )
        except (KeyError, TypeError):
            continue
    out = [
        f"Each size ran {chain.get('runs', '?')} times on the framework and {chain.get('runs', '?')} times "
        "on the floor, alternating, each on a fresh moto; a discarded warm-up run of each came first.",
        "",
    ]
    if not chain.get("full", True):
        out += [_why_fewer(sizes, int(chain.get("runs", 3))), ""]
    if rows:
        out += [
            *_table(
                [
                    "instances x steps",
                    "ours, steps/s",
                    "floor, steps/s",
                    "wall time, ours / floor (min to max)",
                    "CPU time, ours / floor",
                    "wall time, each of our calls at the floor's mean call time",
                ],
                rows,
            ),
            "",
            "The last column takes out moto's uneven cost per operation (an UpdateItem with a long update "
            "expression costs it several PutItems, and a PutItem costs more per attribute): each of our AWS "
            "calls is priced at the floor's mean call time, and our time outside AWS calls is kept as "
            "measured. On AWS, small single-item calls each take one round trip of similar latency, so that "
            "column is the closer guide to what the framework adds there. The target is checked on the "
            "measured wall time.",
            "",
        ]
    return out


def _peers(results: dict[str, Any], peers: dict[str, Any] | None, images: _Images) -> list[str]:
    out = ["## Peers", ""]
    if peers is None:
        return [
            *out,
            "bench/peers.json is missing or unreadable: run `make bench-peers`, then `make bench`.",
            "",
        ]
    rows = peer_rows(peers)
    workload = peers.get("workload", {})
    if isinstance(workload, dict) and workload:
        out += ["From `make bench-peers`: " + ", ".join(f"{k} {v}" for k, v in workload.items()) + ".", ""]
    if rows:
        out += _table(
            ["system", "steps/s median", "min", "max", "note"],
            [
                [
                    r["label"],
                    fmt(r["median"]) if "median" in r else "-",
                    fmt(r["min"]) if "min" in r else "-",
                    fmt(r["max"]) if "max" in r else "-",
                    r.get("unavailable", ""),
                ]
                for r in rows
            ],
        )
        out.append("")
    else:
        keys = ", ".join(sorted(peers)) or "none"
        out += [f"bench/peers.json holds no steps/s figures this generator recognises (keys: {keys}).", ""]
    targets = peer_targets(peers)
    if targets:
        out += [*_table(["target (steps/s medians, same run)", "verdict", "detail"], targets), ""]
    versions = peers.get("versions")
    if isinstance(versions, dict) and versions:
        out += ["Versions of that run: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".", ""]
    plot = peers_plot(results, rows, workload)
    if plot:
        out += images.markdown(plot)
        out += [
            "The bars marked make bench come from bench/results.json, the others from bench/peers.json, "
            "a separate run: compare ours with the peers through the make bench-peers bars, which ran in "
            "the same rounds.",
            "",
        ]
    from bench.peers_doc import workloads_section

    return out + workloads_section(peers)


def write(results_path: Path = RESULTS, peers_path: Path = PEERS, doc: Path = DOC) -> Path:
    """Write the doc and its images; returns the doc's path."""
    images = _Images(doc.parent / IMG.name)
    text = render(load(results_path), load(peers_path), images)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    images.prune()
    if images.problem:
        print(f"perfdoc: no plots: {images.problem}", file=sys.stderr)
    return doc


if __name__ == "__main__":
    print(f"written: {write().relative_to(ROOT)}")
