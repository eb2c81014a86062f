"""Cron expressions and when they fire, in an IANA time zone.

Five fields, ``minute hour day-of-month month day-of-week``, each ``*``, a value, a range ``1-5``, a
step ``*/15`` or ``1-10/2`` (or ``5/10``: from 5 to the field's end), or a comma list of those. Months
and days of the week may be named (``JAN``, ``mon``); day of the week 0 and 7 are both Sunday. As in
Vixie cron, when both day fields are restricted (neither starts with ``*``), a day matches if either
does. Aliases: ``@yearly`` (``@annually``), ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``),
``@hourly``.

Fire times are local wall-clock minutes in the zone, once each:

- a local time that a spring-forward gap skips (02:30 on the night clocks go from 02:00 to 03:00)
  fires at the first instant after the gap (03:00 local); several skipped times fire once there;
- a local time that a fall-back repeats (01:30 on the night clocks go from 02:00 back to 01:00) fires
  once, at its first occurrence; the repeated hour fires nothing (its wall-clock minutes fired already).
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_EXPRESSION_CHARS = 200
# A valid expression fires within this many years of any time (29 FEB fires every 4 years, or 8 across
# a century not divisible by 400); one that does not never fires.
SEARCH_YEARS = 9
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
DAYS = {d.upper(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)}  # MON=1 ... SUN=0
# (name, low, high, names) of each field, in order.
NO_NAMES: dict[str, int] = {}
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, NO_NAMES),
    ("hour", 0, 23, NO_NAMES),
    ("day of month", 1, 31, NO_NAMES),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


class CronError(ValueError):
    """An expression that is not valid cron, or a zone that is unknown. Its message holds at most the
    expression itself, cut to ``MAX_EXPRESSION_CHARS``."""


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression: the values each field matches, sorted."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, year: int, month: int, day: int) -> bool:
        """The day fields match this date (Vixie's rule: either, when both are restricted)."""
        weekday = (calendar.weekday(year, month, day) + 1) % 7
        in_days, in_weekdays = day in self.days, weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, local: datetime) -> bool:
        """``local`` (a wall-clock time) is a minute this expression names."""
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and local.month in self.months
            and self.matches_day(local.year, local.month, local.day)
        )

    def next_local(self, start: datetime) -> datetime:
        """The first wall-clock minute at or after ``start`` (naive, whole minute) that matches. Raise
        CronError if none comes within ``SEARCH_YEARS``."""
        t = start
        limit = start.year + SEARCH_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                i = bisect.bisect_right(self.months, t.month)
                t = (
                    datetime(t.year, self.months[i], 1)
                    if i < len(self.months)
                    else datetime(t.year + 1, 1, 1)
                )
                continue
            if not self.matches_day(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                i = bisect.bisect_right(self.hours, t.hour)
                if i == len(self.hours):
                    t = datetime(t.year, t.month, t.day) + timedelta(days=1)
                else:
                    t = t.replace(hour=self.hours[i], minute=0)
                continue
            if t.minute not in self.minutes:
                i = bisect.bisect_right(self.minutes, t.minute)
                if i == len(self.minutes):
                    t = t.replace(minute=0) + timedelta(hours=1)
                else:
                    t = t.replace(minute=self.minutes[i])
                continue
            return t
        raise CronError(f"cron {_shown(self.expression)} never fires")

    def next_fire(self, after: float, tz: str | ZoneInfo = "UTC") -> float:
        """The first fire strictly after epoch ``after``, as epoch seconds (DST as in the module's
        docstring). Raise CronError for an unknown zone, or an expression that never fires."""
        zone = tz if isinstance(tz, ZoneInfo) else zone_of(tz)
        local = datetime.fromtimestamp(after, zone).replace(tzinfo=None, second=0, microsecond=0)
        candidate = local + timedelta(minutes=1)
        while True:
            candidate = self.next_local(candidate)
            fire = _epoch(candidate, zone)
            if fire > after:  # not so only in a repeated hour: its first occurrence is past
                return fire
            candidate += timedelta(minutes=1)


def _epoch(local: datetime, zone: ZoneInfo) -> float:
    """The first instant at which the wall clock of ``zone`` shows ``local``, or, for a time a gap
    skips, the first instant after the gap."""
    aware = local.replace(tzinfo=zone, fold=0)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == local:
        return aware.timestamp()
    # In a gap: fold=1 reads it with the offset after the gap, an instant before the gap; the gap ends
    # at the first whole minute on from there whose wall clock is past ``local`` (transitions are on
    # whole minutes).
    before = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    before = before.replace(second=0, microsecond=0)
    while True:
        before += timedelta(minutes=1)
        shown = before.astimezone(zone).replace(tzinfo=None)
        if shown > local:
            return before.timestamp()


@lru_cache(maxsize=256)
def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``. Raise CronError if the zone database has no such zone."""
    if not isinstance(name, str) or not 0 < len(name) <= 64 or name.startswith(("/", ".")) or ".." in name:
        raise CronError(f"time zone {_shown(name)} is not an IANA zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"time zone {_shown(name)} is unknown (an IANA name: Europe/Paris, UTC)") from None


@lru_cache(maxsize=256)
def parse(expression: str) -> Cron:
    """Parse ``expression``. Raise CronError saying which field is wrong."""
    if not isinstance(expression, str) or len(expression) > MAX_EXPRESSION_CHARS:
        raise CronError(f"cron must be a string of at most {MAX_EXPRESSION_CHARS} characters")
    text = ALIASES.get(expression.strip().lower(), expression)
    parts = text.split()
    if len(parts) != len(FIELDS):
        raise CronError(
            f"cron {_shown(expression)} has {len(parts)} fields; give 5: minute hour day-of-month "
            "month day-of-week (or @hourly, @daily, @weekly, @monthly, @yearly)"
        )
    values = [_field(part, *spec, expression) for part, spec in zip(parts, FIELDS, strict=True)]
    weekdays = frozenset(v % 7 for v in values[4])  # 7 is Sunday too
    cron = Cron(
        expression=expression,
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        months=tuple(sorted(values[3])),
        weekdays=weekdays,
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )
    cron.next_local(datetime(2000, 1, 1))  # raises if it never fires (30 FEB)
    return cron


def _field(part: str, name: str, low: int, high: int, names: dict[str, int], expression: str) -> set[int]:
    found: set[int] = set()
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        step = _number(step_text, name, expression) if step_text else 1
        if step < 1:
            raise CronError(f"cron {_shown(expression)}: the step of the {name} field must be 1 or more")
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _value(a, name, names, expression), _value(b, name, names, expression)
        else:
            first = _value(body, name, names, expression)
            last = high if step_text else first  # "5/10": from 5 on, as Vixie reads it
        if not low <= first <= high or not low <= last <= high or first > last:
            raise CronError(f"cron {_shown(expression)}: the {name} field takes {low} to {high}")
        found.update(range(first, last + 1, step))
    return found


def _value(text: str, name: str, names: dict[str, int], expression: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    return _number(text, name, expression)


def _number(text: str, name: str, expression: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise CronError(f"cron {_shown(expression)}: the {name} field is not valid")
    return int(text)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_EXPRESSION_CHARS + 2 else text[: MAX_EXPRESSION_CHARS + 2] + "..."


def next_every(after: float, period: float) -> float:
    """The first multiple of ``period`` seconds since the epoch (UTC) strictly after ``after``."""
    return (int(after // period) + 1) * period
