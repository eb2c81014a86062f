"""docs/performance.md's part for the batch workloads of peers.json (``workloads``: map and parallel,
written by bench/peers_map.py). Pure: reads the JSON, returns markdown lines; a part it does not
recognise is skipped, with a line saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _spread(ratio: Any) -> str:
    """``{"median": m, "min": a, "max": b}`` as ``"m (a to b)"``; ``-`` if it is not one."""
    from bench.perfdoc import fmt

    if not isinstance(ratio, dict) or "median" not in ratio:
        return "-"
    if ratio.get("min") == ratio.get("max") == ratio["median"]:
        return fmt(ratio["median"])
    return f"{fmt(ratio['median'])} ({fmt(ratio.get('min'))} to {fmt(ratio.get('max'))})"


def _ops(calls: Any) -> str:
    if not isinstance(calls, dict):
        return ""
    return ", ".join(f"{op.split('.', 1)[-1]} {n:g}" for op, n in calls.items() if isinstance(n, int | float))


def workload_rows(name: str, part: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The table of one workload: a row per case, with each peer's wall over ours and ours' counts."""
    from bench.perfdoc import fmt

    systems = part.get("systems") if isinstance(part.get("systems"), dict) else {}
    cases = [c for c in part.get("cases", []) if isinstance(c, dict)]
    peers = [k for k in systems if k != "ours" and any(isinstance(c.get(k), dict) for c in cases)]
    unit = str(part.get("unit", "unit"))
    header = [
        "workload",
        "max_concurrency",
        *(f"{systems[k].get('label', k)}: wall / ours" for k in peers),
        f"ours: DynamoDB calls per {unit}",
        f"ours: worker invocations per {unit}",
        f"ours: AWS calls per {unit}",
    ]
    moto = any(isinstance(c.get("ours"), dict) and "moto_transaction_share" in c["ours"] for c in cases)
    if moto:
        header.append("ours: share of its wall in moto's TransactWriteItems")
    rows = []
    for case in cases:
        ours = case.get("ours") if isinstance(case.get("ours"), dict) else {}
        rows.append(
            [
                f"{name}, {fmt(part.get('size', '?'))} {unit}s",
                fmt(case.get("max_concurrency", "?")),
                *(_spread((case.get(k) or {}).get("wall_over_ours")) for k in peers),
                fmt(ours.get("dynamodb_calls_per_unit", "-")),
                fmt(ours.get("worker_invocations_per_unit", "-")),
                _ops(ours.get("calls_per_unit")),
            ]
            + ([_spread(ours.get("moto_transaction_share"))] if moto else [])
        )
    return header, rows


def workloads_section(doc: dict[str, Any]) -> list[str]:
    """The batch workloads' markdown: what was run, then a table for each, then what did not run."""
    from bench.perfdoc import _table

    workloads = doc.get("workloads")
    if not isinstance(workloads, dict) or not workloads:
        return []
    out = [
        HEADING,
        "",
        "Each peer's wall time over ours in the same round (above 1: slower than ours), median (min to "
        "max) of the rounds; ours' calls are counted in the timed runs themselves (botocore `before-call` "
        "hooks), per map item or per parallel instance, the create's included. Ours runs on in-process "
        "moto, whose calls cost far more than the runner's in-memory store: the ratios compare the "
        "systems as each runs locally, not on AWS. (moto's TransactWriteItems copies every table it "
        "touches, so its time grows with the table: a shown share is the wall spent there.)",
        "",
    ]
    for name, part in workloads.items():
        if not isinstance(part, dict):
            out += [f"bench/peers.json's workload {name!r} is not an object this generator recognises.", ""]
            continue
        header, rows = workload_rows(str(name), part)
        out += [*_table(header, rows), ""] if rows else [f"Workload {name}: no figures.", ""]
        unit = str(part.get("unit", "unit"))
        notes = [f"{part['runs']} rounds after a warm-up of {part.get('warmup', '?')} {unit}s"]
        if part.get("note"):
            notes.append(str(part["note"]))
        systems = part.get("systems") if isinstance(part.get("systems"), dict) else {}
        notes += [
            f"{entry.get('label', key)} not measured: {entry['unavailable']}"
            for key, entry in systems.items()
            if isinstance(entry, dict) and "unavailable" in entry
        ]
        out += [f"{name}: " + "; ".join(notes) + ".", ""]
    return out


HEADING = "### Map and parallel"


def splice(text: str, section: list[str]) -> str:
    """``text`` (docs/performance.md) with its map and parallel part replaced by ``section``: that part
    runs from HEADING to the next heading of level 2 or above, or to the end; without one, ``section``
    goes at the end."""
    body = "\n".join(section).strip()
    start = text.find(f"\n{HEADING}\n")
    if start < 0:
        head, tail = text, ""
    else:
        after = text.find("\n## ", start + 1)
        head, tail = text[:start], text[after:] if after >= 0 else ""
    return "\n\n".join(part for part in (head.rstrip(), body, tail.strip()) if part) + "\n"


def refresh(doc: Path | None = None, peers: Path | None = None) -> Path:
    """Rewrite only the map and parallel part of docs/performance.md from bench/peers.json: the rest of
    the doc needs bench/results.json (``make bench``), which `make bench-peers` does not write."""
    from bench.perfdoc import DOC, PEERS, load

    doc, peers = doc or DOC, peers or PEERS
    found = load(peers) or {}
    doc.write_text(splice(doc.read_text(), workloads_section(found)))
    return doc
