"""Wait strategies for ``step.wait_for_condition``: when to check again, and when the state is done."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.core.durations import Duration, parse_duration
from framework.errors import InvalidConfigError, WorkflowTimeoutError


def poll_every(
    interval: Duration,
    *,
    until: Callable[[Any], bool],
    max_attempts: int | None = None,
    backoff: float = 1.0,
    max_interval: Duration | None = None,
) -> Callable[[Any, int], float | None]:
    """A wait strategy: done once ``until(state)`` is true; else check again after ``interval``
    (times ``backoff`` to the power of the checks made so far, at most ``max_interval``). After
    ``max_attempts`` checks that were not done, the wait raises WorkflowTimeoutError."""
    seconds = parse_duration(interval, what="poll interval")
    cap = None if max_interval is None else parse_duration(max_interval, what="max poll interval")
    if not callable(until):
        raise InvalidConfigError("until of poll_every must be a function of the state")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise InvalidConfigError(
            f"max_attempts of poll_every must be a whole number of 1 or more, got {max_attempts!r}"
        )
    if isinstance(backoff, bool) or not isinstance(backoff, int | float) or not 1.0 <= backoff <= 10.0:
        raise InvalidConfigError(f"backoff of poll_every must be a number from 1 to 10, got {backoff!r}")

    def strategy(state: Any, checks: int) -> float | None:
        if until(state):
            return None
        if max_attempts is not None and checks >= max_attempts:
            raise WorkflowTimeoutError(f"the condition was not met after {checks} checks")
        delay = seconds * backoff ** min(checks - 1, 64)
        return delay if cap is None else min(delay, cap)

    return strategy
