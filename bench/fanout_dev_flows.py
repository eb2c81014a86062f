"""The workflows of bench section ``fanout-dev``, registered as the module loads: ``workflows dev`` loads
them with ``--modules bench.fanout_dev_flows`` in its worker processes, and LocalRuntime runs the same
ones in the bench's process."""

from __future__ import annotations

from typing import Any

from framework import workflow

PARENT, ITEM = "bench-dev-map", "bench-dev-item"


@workflow(ITEM)
def item(event: Any, step: Any) -> int:
    """One item: one step that doubles ``i``."""
    i = int(event.payload["i"])
    return int(step.do("work", lambda: i * 2))


@workflow(PARENT)
def parent(event: Any, step: Any) -> dict[str, int]:
    """A map of ``items`` items over ``bench-dev-item``, ``concurrency`` at once: how many succeeded,
    and the sum of their outputs (``items * (items - 1)`` when every item ran once)."""
    items = [{"i": i} for i in range(int(event.payload["items"]))]
    batch = step.map("items", items, ITEM, max_concurrency=int(event.payload["concurrency"]))
    return {"succeeded": batch.success_count, "sum": sum(batch.get_results())}
