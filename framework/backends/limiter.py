"""What the store keeps for concurrency and rate limits (``@workflow(concurrency=..., rate=...)``):
one limiter item per workflow and key, and one waiter item per instance that waits for a slot.

The store only reads and writes these, each write conditional; what they mean is
``framework.engine.limits``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LimiterState:
    """One limiter (a workflow, and a key of it): the slots taken, each by a lease owner until its
    lease ends, and the start times the rate counts (past starts and reserved tickets), in order.
    ``version`` is the stored item's token (None: no item yet)."""

    holders: dict[str, float] = field(default_factory=dict)
    starts: tuple[float, ...] = ()
    version: str | None = None


class LimiterConflict(Exception):
    """The limiter changed since it was read: ``current`` is what is stored now."""

    def __init__(self, current: LimiterState) -> None:
        super().__init__("limiter changed")
        self.current = current


@dataclass(frozen=True, slots=True, order=True)
class Waiter:
    """An instance waiting for a slot of a limiter. ``order`` sorts waiters: the instance's creation
    time, so that each instance has one place, kept when it registers again."""

    order: float
    instance_id: str
