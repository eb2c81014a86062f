"""Named fault-injection points. Production code calls ``point()``; only tests and the local runtime
install hooks, which may raise to make the invocation die right there.

Points: ``journal.before_write``, ``journal.after_write``, ``step.after_body`` (the body returned, its
result is not written yet), ``instance.before_release``, ``instance.after_release`` (the status is
written, the wake-up not sent yet), ``queue.before_send``, ``queue.after_send``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Hook = Callable[[str, dict[str, Any]], None]
POINTS = (
    "journal.before_write",
    "journal.after_write",
    "step.after_body",
    "instance.before_release",
    "instance.after_release",
    "queue.before_send",
    "queue.after_send",
)
# Reached only by child instances (``step.invoke``): between a child's release and its report, and
# between the report and the parent's wake-up.
CHILD_POINTS = ("child.before_report", "child.before_parent_wake")
# Reached only by workflows with a concurrency limit (framework.engine.limits): a slot given back, its
# waiters not woken yet.
LIMIT_POINTS = ("limits.after_free",)
# Reached only by the sweeper firing a schedule (framework.engine.schedules): a fire's instance is
# created and started, the schedule's mark not moved yet.
SCHEDULE_POINTS = ("schedule.after_create",)
_hooks: list[Hook] = []


def point(where: str, /, **info: Any) -> None:
    """Give each installed hook a chance to fail here. Costs one empty-list check when none is."""
    if _hooks:
        for hook in list(_hooks):
            hook(where, info)


@contextmanager
def injected(hook: Hook) -> Iterator[None]:
    _hooks.append(hook)
    try:
        yield
    finally:
        _hooks.remove(hook)
