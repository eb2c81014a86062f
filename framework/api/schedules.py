"""A workflow's schedule: ``@workflow(name, schedule="0 3 * * *", timezone=...)`` or ``every=``.

This module holds the declaration only; firing is ``framework.engine.schedules``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from framework.core import cron
from framework.core.durations import Duration, parse_duration
from framework.errors import InvalidConfigError


class CatchUp(StrEnum):
    """What a schedule does with the fires it missed (an outage, a pause of the sweeper)."""

    NONE = "none"  # only a fire on time starts an instance; missed ones are dropped
    LAST = "last"  # the latest missed fire starts one instance
    ALL = "all"  # every missed fire within ``catch_up_window`` starts one


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a workflow starts by itself: a cron expression in ``timezone``, or every ``every``
    seconds (counted from the epoch, so fire times are the same on every machine)."""

    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    catch_up: CatchUp = CatchUp.LAST
    catch_up_window: float = 86400.0

    def next_fire(self, after: float) -> float:
        """The first fire strictly after epoch ``after`` (framework.core.cron; ``every`` counts from
        the epoch, in UTC)."""
        if self.every is not None:
            return cron.next_every(after, self.every)
        assert self.cron is not None  # schedule_of gives one of the two
        return cron.parse(self.cron).next_fire(after, self.timezone)

    @property
    def expression(self) -> str:
        """The cron expression, or ``every <n> seconds``: what a fire's params name as its schedule."""
        return self.cron if self.cron is not None else f"every {self.every:g} seconds"


def schedule_of(
    name: str,
    schedule: str | None,
    every: Duration | None,
    timezone: str | None,
    catch_up: str | None,
    catch_up_window: Duration | None,
) -> Schedule | None:
    """The schedule that ``@workflow`` declares, checked; None if it declares none. Raise
    InvalidConfigError."""
    if schedule is None and every is None:
        if timezone is not None or catch_up is not None or catch_up_window is not None:
            raise InvalidConfigError(f"workflow {name!r} sets schedule options but no schedule or every")
        return None
    if schedule is not None and every is not None:
        raise InvalidConfigError(f"workflow {name!r} sets both schedule and every; choose one")
    if schedule is not None and not isinstance(schedule, str):
        raise InvalidConfigError(f"schedule of workflow {name!r} must be a cron string")
    seconds = None if every is None else parse_duration(every, what=f"every of workflow {name!r}")
    if seconds is not None and (seconds < 1 or seconds != int(seconds)):
        # Whole seconds: a fire's instance id names its time to the second.
        raise InvalidConfigError(f"every of workflow {name!r} must be a whole number of seconds, 1 or more")
    try:
        if schedule is not None:
            cron.parse(schedule)
        cron.zone_of(timezone or "UTC")
    except cron.CronError as exc:
        raise InvalidConfigError(f"workflow {name!r}: {exc}") from None
    if timezone is not None and every is not None:
        raise InvalidConfigError(f"workflow {name!r} sets a timezone for every=, which counts in UTC")
    try:
        policy = CatchUp(catch_up or CatchUp.LAST)
    except ValueError:
        choices = ", ".join(c.value for c in CatchUp)
        raise InvalidConfigError(f"catch_up of workflow {name!r} must be one of: {choices}") from None
    window = 86400.0 if catch_up_window is None else parse_duration(catch_up_window, what="catch_up_window")
    return Schedule(
        cron=schedule,
        every=seconds,
        timezone=timezone or "UTC",
        catch_up=policy,
        catch_up_window=window,
    )
