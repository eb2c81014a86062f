"""Cron expressions (framework.core.cron) and the schedule declaration's checks (framework.api.schedules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework import InvalidConfigError, workflow
from framework.api.schedules import CatchUp, schedule_of
from framework.core.cron import CronError, next_every, parse, zone_of


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def fires(expression: str, after: float, count: int, tz: str = "UTC") -> list[datetime]:
    cron, out, t = parse(expression), [], after
    for _ in range(count):
        t = cron.next_fire(t, tz)
        out.append(datetime.fromtimestamp(t, ZoneInfo(tz)))
    return out


def test_fields_lists_ranges_steps_and_names() -> None:
    c = parse("*/15 1-10/3 1,15 JAN-mar mon-FRI")
    assert c.minutes == (0, 15, 30, 45)
    assert c.hours == (1, 4, 7, 10)
    assert c.months == (1, 2, 3)
    assert c.weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse("5/20 * * * *").minutes == (5, 25, 45)  # from 5 to the field's end
    assert parse("0 0 * * 0").weekdays == parse("0 0 * * 7").weekdays == frozenset({0})  # both Sunday


@pytest.mark.parametrize(
    ("alias", "same"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_aliases(alias: str, same: str) -> None:
    after = utc(2026, 12, 6, 16, 35)
    assert fires(alias, after, 3) == fires(same, after, 3)


def test_vixie_either_day_field_matches_when_both_are_restricted() -> None:
    # The 13th, or any Friday: Dec 2026 has Friday the 11th and 18th, and Sunday the 13th.
    days = [f.day for f in fires("0 0 13 * FRI", utc(2026, 12, 10), 3)]
    assert days == [11, 13, 18]
    # One restricted (the other "*"): both must match, so only the 13th of each month.
    assert [f.day for f in fires("0 0 13 * *", utc(2026, 12, 10), 2)] == [13, 13]
    # Restricted as "*/2": it starts with "*", so it counts as unrestricted (Vixie): both must match.
    assert all(f.day % 2 == 1 and f.weekday() == 4 for f in fires("0 0 */2 * FRI", utc(2026, 1, 1), 5))


def test_a_rare_expression_fires_and_one_that_never_does_is_refused() -> None:
    assert [f.year for f in fires("0 0 29 2 *", utc(2026, 1, 1), 2)] == [2028, 2032]
    with pytest.raises(CronError, match="never fires"):
        parse("0 0 30 2 *")


@pytest.mark.parametrize(
    "bad",
    ["", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8",
     "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * FOO *", "1,,2 * * * *", "@often", "\u0661 * * * *",
     "x" * 300],
)  # fmt: skip
def test_bad_expressions_are_refused_with_a_bounded_message(bad: str) -> None:
    with pytest.raises(CronError) as info:
        parse(bad)
    assert len(str(info.value)) < 400


def test_unknown_zones_are_refused() -> None:
    for bad in ("Mars/Olympus", "../etc/passwd", "", "Europe/Paris" * 10):
        with pytest.raises(CronError):
            zone_of(bad)
    assert str(zone_of("Europe/Paris")) == "Europe/Paris"


def test_spring_forward_gap_fires_at_the_first_instant_after_it() -> None:
    # Europe/Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
    got = fires("30 2 * * *", utc(2026, 3, 28, 12), 2, "Europe/Paris")
    assert got[0] == datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert got[0].timestamp() == utc(2026, 3, 29, 1, 0)  # the transition itself
    assert got[1].timestamp() == utc(2026, 3, 30, 0, 30)  # 02:30 CEST the next day
    # Several skipped times (02:00, 02:30) and 03:00 itself fire once, at 03:00 CEST.
    half = [f.timestamp() for f in fires("*/30 * * * *", utc(2026, 3, 29, 0, 15), 4, "Europe/Paris")]
    assert half == [
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 29, 2),
    ]


def test_fall_back_ambiguous_time_fires_once_at_its_first_occurrence() -> None:
    # America/New_York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 happens twice.
    got = fires("30 1 * * *", utc(2026, 10, 31, 12), 2, "America/New_York")
    assert got[0].timestamp() == utc(2026, 11, 1, 5, 30)  # 01:30 EDT (UTC-4), not 06:30 (EST)
    assert got[1].timestamp() == utc(2026, 11, 2, 6, 30)  # 01:30 EST the next day
    # A fire asked for from inside the repeated hour skips its wall-clock times: they fired already.
    inside = utc(2026, 11, 1, 6, 10)  # 01:10 EST, the second pass
    assert parse("*/20 * * * *").next_fire(inside, "America/New_York") == utc(2026, 11, 1, 7, 0)


def test_paris_fall_back_and_new_york_spring_forward() -> None:
    # Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 fires once, in CEST.
    assert fires("30 2 * * *", utc(2026, 10, 24, 12), 1, "Europe/Paris")[0].timestamp() == utc(
        2026, 10, 25, 0, 30
    )
    # New York, 2026-03-08: 02:00 EST becomes 03:00 EDT.
    assert fires("15 2 * * *", utc(2026, 3, 7, 12), 1, "America/New_York")[0].timestamp() == utc(
        2026, 3, 8, 7
    )


def test_every_counts_multiples_of_the_period_since_the_epoch() -> None:
    assert next_every(0.0, 900.0) == 900.0
    assert next_every(899.9, 900.0) == 900.0
    assert next_every(900.0, 900.0) == 1800.0  # strictly after


FIELD = st.one_of(
    st.just("*"),
    st.builds(lambda a: f"*/{a}", st.integers(1, 20)),
    st.builds(lambda a, b: f"{min(a, b)}-{max(a, b)}", st.integers(0, 6), st.integers(0, 6)),
    st.builds(lambda a, b: f"{a},{b}", st.integers(0, 6), st.integers(0, 6)),
)
EXPRESSIONS = st.builds(
    lambda m, h, d, mo, w: f"{m.replace('6', '59')} {h} {d.replace('0', '1')} {mo.replace('0', '1')} {w}",
    FIELD, FIELD, FIELD, FIELD, FIELD,
)  # fmt: skip
ZONES = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])


def _gap_end(t: float, zone: ZoneInfo) -> bool:
    """``t`` is the first instant after a spring-forward gap."""
    before, at = datetime.fromtimestamp(t - 60, zone), datetime.fromtimestamp(t, zone)
    return at.utcoffset() != before.utcoffset() and at.replace(tzinfo=None) - before.replace(
        tzinfo=None
    ) > timedelta(minutes=1)


@settings(max_examples=60, deadline=None)
@given(
    expression=EXPRESSIONS,
    tz=ZONES,
    start=st.integers(utc(2025, 1, 1), utc(2030, 1, 1)),
)
def test_fires_match_increase_and_skip_no_matching_minute(expression: str, tz: str, start: int) -> None:
    try:
        cron = parse(expression)
    except CronError:
        return  # "0 0 30 2 *" and the like
    zone = ZoneInfo(tz)
    t, previous = float(start), float(start)
    for _ in range(4):
        t = cron.next_fire(previous, tz)
        assert t > previous
        local = datetime.fromtimestamp(t, zone)
        assert cron.matches(local.replace(tzinfo=None)) or _gap_end(t, zone), (expression, tz, local)
        # Every whole minute in between: no match, but a second pass of a repeated wall-clock time.
        m = (previous // 60 + 1) * 60
        checked = 0
        while m < t and checked < 3000:
            wall = datetime.fromtimestamp(m, zone)
            if cron.matches(wall.replace(tzinfo=None)):
                assert wall.fold == 1, (expression, tz, wall)  # its first occurrence fired already
            m += 60
            checked += 1
        previous = t


def test_schedule_of_checks_cron_zone_and_every() -> None:
    s = schedule_of("n", "0 3 * * *", None, "Europe/Paris", "all", "2 hours")
    assert s is not None and s.catch_up is CatchUp.ALL and s.catch_up_window == 7200
    assert s.next_fire(utc(2026, 12, 6, 1)) == utc(2026, 12, 6, 2)
    e = schedule_of("n", None, "15 minutes", None, None, None)
    assert e is not None and e.expression == "every 900 seconds" and e.next_fire(0) == 900
    for args in [
        ("61 * * * *", None, None),
        ("0 3 * * *", None, "Nowhere/City"),
        (None, "1.5 seconds", None),
        (None, "15 minutes", "Europe/Paris"),  # every= counts in UTC
    ]:
        with pytest.raises(InvalidConfigError) as info:
            schedule_of("n", args[0], args[1], args[2], None, None)
        assert len(str(info.value)) < 400
    with pytest.raises(InvalidConfigError):
        workflow("bad-cron", schedule="0 3 * * * *")(lambda event, step: None)
