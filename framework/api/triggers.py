"""A workflow's event trigger: ``@workflow(name, trigger={"s3": {...}})`` or an EventBridge pattern.

This module holds the declaration only; matching events and starting instances is
``framework.manage.triggers``, and the pattern grammar ``framework.core.event_patterns``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from framework.core.event_patterns import check_pattern
from framework.errors import InvalidConfigError

KINDS = ("s3", "eventbridge")
S3_KEYS = ("bucket", "prefix", "suffix")


@dataclass(frozen=True, slots=True)
class Trigger:
    """What starts the workflow: S3 objects created (``s3``: bucket, prefix, suffix), or EventBridge
    events matching a pattern (``eventbridge``)."""

    s3: Mapping[str, str] | None = None
    eventbridge: Mapping[str, Any] | None = field(default=None)


def trigger_of(name: str, trigger: Mapping[str, Any] | None) -> Trigger | None:
    """The trigger that ``@workflow`` declares, checked; None if none. Raise InvalidConfigError."""
    if trigger is None:
        return None
    if not isinstance(trigger, Mapping) or not trigger or set(trigger) - set(KINDS):
        raise InvalidConfigError(
            f"trigger of workflow {name!r} must be a dict with one or more of: {', '.join(KINDS)}"
        )
    s3, eventbridge = trigger.get("s3"), trigger.get("eventbridge")
    if s3 is not None and not (
        isinstance(s3, Mapping)
        and isinstance(s3.get("bucket"), str)
        and s3["bucket"]
        and not set(s3) - set(S3_KEYS)
        and all(isinstance(v, str) for v in s3.values())
    ):
        raise InvalidConfigError(
            f"trigger s3 of workflow {name!r} must be a dict with a 'bucket' and optional 'prefix' "
            "and 'suffix', all strings"
        )
    if eventbridge is not None:
        check_pattern(eventbridge, what=f"trigger eventbridge of workflow {name!r}")
    return Trigger(s3=dict(s3) if s3 else None, eventbridge=dict(eventbridge) if eventbridge else None)
