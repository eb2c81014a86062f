"""A workflow's concurrency and rate limits: ``@workflow(name, concurrency=20, rate="10/second",
key=lambda params: params["customer"])``.

This module holds the declaration only; slots and tickets are ``framework.engine.limits``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framework.core.durations import parse_duration
from framework.errors import InvalidConfigError, InvalidParamsError

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(.+?)\s*$")
MAX_CONCURRENCY = 1000
MAX_RATE = 1000  # starts per period: the limiter item keeps one time per start of the last period


@dataclass(frozen=True, slots=True)
class Limits:
    """At most ``concurrency`` invocations run the workflow's code at once, and at most ``rate_count``
    begin per ``rate_period`` seconds; per value of ``key(params)`` when a key is given."""

    concurrency: int | None = None
    rate_count: int | None = None
    rate_period: float | None = None
    key: Callable[[Any], Any] | None = None


def limits_of(
    name: str, concurrency: int | None, rate: str | None, key: Callable[[Any], Any] | None
) -> Limits | None:
    """The limits that ``@workflow`` declares, checked; None if none. Raise InvalidConfigError."""
    if concurrency is None and rate is None:
        if key is not None:
            raise InvalidConfigError(f"workflow {name!r} sets a limit key but no concurrency or rate")
        return None
    if concurrency is not None and (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidConfigError(
            f"concurrency of workflow {name!r} must be an int from 1 to {MAX_CONCURRENCY}"
        )
    count = period = None
    if rate is not None:
        match = _RATE.match(rate) if isinstance(rate, str) else None
        if match is None or not 1 <= int(match.group(1)) <= MAX_RATE:
            raise InvalidConfigError(
                f'rate of workflow {name!r} must read like "10/second" or "100/5 minutes", '
                f"at most {MAX_RATE} per period"
            )
        unit = match.group(2)
        period = parse_duration(unit if unit[0].isdigit() else f"1 {unit}", what=f"rate period of {name!r}")
        if period <= 0:
            raise InvalidConfigError(f"rate period of workflow {name!r} must be longer than 0")
        count = int(match.group(1))
    if key is not None and not callable(key):
        raise InvalidConfigError(f"key of workflow {name!r} must be a function of the params")
    return Limits(concurrency=concurrency, rate_count=count, rate_period=period, key=key)


def limit_key(name: str, limits: Limits | None, params: Callable[[], Any]) -> str | None:
    """The instance's limit key: ``limits.key`` called on the params as the workflow receives them
    (``params()`` gives them), once, when the instance is created. None without a key function. Raise
    InvalidParamsError if the function raises or returns anything but a string; the message names
    neither the params nor what the function returned."""
    if limits is None or limits.key is None:
        return None
    try:
        value = limits.key(params())
    except Exception as exc:
        raise InvalidParamsError(
            f"the limit key of workflow {name!r} could not be computed from the params ({type(exc).__name__})"
        ) from None
    if not isinstance(value, str):
        raise InvalidParamsError(
            f"the limit key of workflow {name!r} must be a string, not {type(value).__name__}"
        )
    return value
