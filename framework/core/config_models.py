"""The typed step config, ``RetryPolicy`` and ``StepConfig``: pydantic models.

Import them from ``framework`` or ``framework.core.config``, which load this module (and pydantic) on first
use. Their defaults and the retry delay formula live in ``framework.core.config``, which the engine uses.
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from framework.core.config import (
    DEFAULT_DELAY,
    DEFAULT_LIMIT,
    DEFAULT_TIMEOUT,
    MAX_RETRY_LIMIT,
    Backoff,
    Jitter,
    retry_delay,
)
from framework.core.durations import Duration, parse_duration


class RetryPolicy(BaseModel):
    """How a failing step retries. ``limit`` counts retries after the first attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    limit: int = Field(default=DEFAULT_LIMIT, ge=0, le=MAX_RETRY_LIMIT)
    delay: float = DEFAULT_DELAY
    backoff: Backoff = Backoff.EXPONENTIAL
    max_delay: float | None = None
    jitter: Jitter = Jitter.NONE
    non_retryable: tuple[type[BaseException], ...] = ()
    # When set, only these exception types are retried; any other fails the step at once.
    retryable: tuple[type[BaseException], ...] | None = None

    @field_validator("delay", "max_delay", mode="before")
    @classmethod
    def _duration(cls, value: Duration | None) -> float | None:
        return None if value is None else parse_duration(value, what="retry delay")

    @field_validator("non_retryable", "retryable", mode="before")
    @classmethod
    def _exception_types(cls, value: Any, info: ValidationInfo) -> tuple[type[BaseException], ...] | None:
        if value is None and info.field_name == "retryable":
            return None
        types = tuple(value) if isinstance(value, list | tuple) else (value,)
        for kind in types:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise ValueError(f"{info.field_name} must hold exception classes, got {kind!r}")
        return types

    def may_retry(self, error: BaseException) -> bool:
        """Whether a failed attempt's ``error`` may be retried: not one of ``non_retryable``, and one
        of ``retryable`` when that is set."""
        if isinstance(error, self.non_retryable):
            return False
        return self.retryable is None or isinstance(error, self.retryable)

    def delay_before_retry(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        return retry_delay(self.delay, self.backoff, self.max_delay, self.jitter, retry, rng)


class StepConfig(BaseModel):
    """Config of one ``step.do``. ``timeout`` bounds each attempt, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retries: RetryPolicy = RetryPolicy()
    timeout: float = DEFAULT_TIMEOUT
    at_most_once: bool = False

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Duration) -> float:
        seconds = parse_duration(value, what="step timeout")
        if seconds <= 0:
            raise ValueError("step timeout must be more than 0 seconds")
        return seconds


DEFAULT_STEP_CONFIG = StepConfig()
