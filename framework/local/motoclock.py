"""Make in-process moto's SQS keep virtual time: delays, visibility timeouts and timestamps.

moto reads the time through ``unix_time`` and ``unix_time_millis`` imported into ``moto.sqs.models``.
That is a private seam, which is why moto is pinned exactly in pyproject.toml; a test fails loudly if
the seam moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from unittest import mock

from framework.core.clock import Clock


@contextmanager
def follow_clock(clock: Clock) -> Iterator[None]:
    import moto.sqs.models as sqs_models

    real_time, real_millis = getattr(sqs_models, "unix_time"), getattr(sqs_models, "unix_time_millis")  # noqa: B009

    def unix_time(dt: datetime | None = None) -> float:
        return clock.now() if dt is None else real_time(dt)

    def unix_time_millis(dt: datetime | None = None) -> float:
        return clock.now() * 1000.0 if dt is None else real_millis(dt)

    with (
        mock.patch.object(sqs_models, "unix_time", unix_time),
        mock.patch.object(sqs_models, "unix_time_millis", unix_time_millis),
    ):
        yield
