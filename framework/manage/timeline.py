"""A readable timeline of an instance: steps with their attempts, sleeps, and the outcome."""

from __future__ import annotations

import json
from datetime import datetime

from framework.manage.client import HistoryEntry, InstanceStatus


def _offset(when: datetime | None, start: datetime) -> str:
    if when is None:
        return "      ...  "
    seconds = (when - start).total_seconds()
    if seconds < 120:
        return f"{seconds:>+9.3f}s "
    if seconds < 7200:
        return f"{seconds / 60:>+9.1f}m "
    return f"{seconds / 3600:>+9.2f}h "


def _short(value: object, width: int = 60) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def _result(entry: HistoryEntry) -> str:
    if entry.result_omitted == "not_requested":
        return f"{entry.result_bytes:,} bytes (--results shows it)"
    if entry.result_omitted is not None:
        return f"{entry.result_bytes:,} bytes (too large for a page)"
    return _short(entry.result)


def format_timeline(
    status: InstanceStatus, history: list[HistoryEntry], *, first: bool = True, last: bool = True
) -> str:
    """Times are offsets from the instance's creation. A page of a paged history: the heading only on
    the ``first``, the output or error only on the ``last``."""
    start = status.created_at
    lines = [f"instance {status.id} ({status.workflow}): {status.status}"] if first else []
    for entry in history:
        lines.append(f"{_offset(entry.started_at, start)} {entry.kind:<5} {entry.name!r}: {entry.status}")
        for number, attempt in enumerate(entry.attempts, 1):
            took = (
                f"{(attempt.ended_at - attempt.started_at).total_seconds():.3f}s"
                if attempt.ended_at
                else "running"
            )
            outcome = f"{attempt.error['name']}: {attempt.error['message']}" if attempt.error else "ok"
            lines.append(f"{_offset(attempt.started_at, start)}   attempt {number} ({took}): {outcome}")
        if entry.kind == "sleep" and entry.wake_at:
            lines.append(f"{_offset(entry.wake_at, start)}   wakes")
        if entry.kind == "invoke":
            lines.append(f"{'':11}   child instance: {entry.child_id}")
        if entry.progress is not None:  # a map over a workflow
            p = entry.progress
            counts = ", ".join(
                f"{p[k]} {k}" for k in ("waiting", "running", "succeeded", "failed", "stopped")
            )
            lines.append(f"{'':11}   {p['items']} children of {p['workflow']}: {counts}")
        if entry.kind in ("step", "callback", "invoke") and entry.status == "complete":
            lines.append(f"{'':11}   result: {_result(entry)}")
        if entry.kind == "invoke" and entry.error:
            lines.append(f"{'':11}   child ended: {entry.error['name']}: {_short(entry.error['message'])}")
        if entry.kind == "callback" and entry.error:
            lines.append(f"{'':11}   failure sent: {entry.error['name']}: {_short(entry.error['message'])}")
    if last and status.error:
        lines.append(
            f"{_offset(status.updated_at, start)} error: {status.error['name']}: {status.error['message']}"
        )
    elif last and status.status == "complete":
        lines.append(f"{_offset(status.updated_at, start)} output: {_short(status.output, 100)}")
    return "\n".join(lines)
