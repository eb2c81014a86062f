"""Durations and instants, as workflows write them.

A duration is a ``timedelta``, a number of seconds (int or float), or a string such as "30 seconds",
"1.5 seconds", "5 minutes", "2 hours", "3 days", "1 week", "1 month" (30 days) or "1 year" (365 days).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from framework.errors import InvalidConfigError

Duration: TypeAlias = timedelta | int | float | str

_UNIT_SECONDS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$")
# Far beyond any real sleep, but it keeps datetimes and epoch arithmetic in range.
MAX_SECONDS = 100 * 365 * 86400
LATEST_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z, the last instant a datetime can hold


def parse_duration(value: Duration, *, what: str = "duration") -> float:
    """Return the duration in seconds (>= 0). Raise InvalidConfigError on anything else."""
    if isinstance(value, bool):
        raise InvalidConfigError(f"{what} must be a duration, not a bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float: far longer (or shorter) than any duration
            seconds = math.inf if value > 0 else -math.inf
    elif isinstance(value, str):
        match = _DURATION.match(value.lower())
        if not match or match.group(2) not in _UNIT_SECONDS:
            units = ", ".join(_UNIT_SECONDS)
            raise InvalidConfigError(
                f"{what} {_shown(value)} is not a duration: write a number and a unit ({units}), "
                'for example "30 seconds" or "2 hours"'
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise InvalidConfigError(
            f"{what} must be a timedelta, a number of seconds or a string, not {type(value).__name__}"
        )
    if math.isnan(seconds) or seconds < 0:
        raise InvalidConfigError(f"{what} must be finite and not negative, got {_shown(value)}")
    if seconds > MAX_SECONDS:
        raise InvalidConfigError(f"{what} {_shown(value)} is longer than 100 years")
    return seconds


def to_epoch(when: datetime | int | float, *, what: str = "time") -> float:
    """Return epoch seconds for an aware datetime or epoch seconds. A naive datetime is an error."""
    if isinstance(when, bool):
        raise InvalidConfigError(f"{what} must be an aware datetime or epoch seconds, not a bool")
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise InvalidConfigError(
                f"{what} {when.isoformat()} is a naive datetime: give it a timezone, "
                "for example datetime(..., tzinfo=timezone.utc)"
            )
        epoch = when.timestamp()
        if epoch > LATEST_EPOCH:  # 9999-12-31 in a timezone west of UTC: no datetime holds it in UTC
            raise InvalidConfigError(f"{what} {when.isoformat()} is after 9999-12-31T23:59:59Z")
        return epoch
    if isinstance(when, int | float):
        # Compared as it is: an int of any size compares exactly, NaN compares false.
        if not 0 <= when <= LATEST_EPOCH:
            raise InvalidConfigError(f"{what} must be epoch seconds from 1970 to 9999, got {_shown(when)}")
        return float(when)
    raise InvalidConfigError(f"{what} must be an aware datetime or epoch seconds, not {type(when).__name__}")


def _shown(value: Duration | datetime) -> str:
    """``repr(value)`` for a message, bounded: an int's repr may run to thousands of digits (and
    raises ValueError past 4,300), a string's to any length."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 100 else f"{text[:100]}..."


def iso(epoch: float | None) -> str | None:
    """Format epoch seconds as an ISO 8601 UTC string (millisecond precision)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def from_epoch(epoch: float) -> datetime:
    """Return an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC)
