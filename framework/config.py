"""Step configuration: retry policy, attempt timeout and the at-most-once switch.

Accepts Cloudflare's dict shape (``{"retries": {"limit": 5, "delay": "10 seconds", "backoff":
"exponential"}, "timeout": "10 minutes"}``) or the typed models below. Both are validated when the step
is defined; a config that gives only some keys takes the defaults for the rest.
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from framework.durations import MAX_SECONDS, Duration, parse_duration
from framework.errors import InvalidConfigError

# Each attempt is kept in the step's journal item (errors cut to 512 characters): 101 attempts stay far
# below the 400 KB item limit.
MAX_RETRY_LIMIT = 100


class Backoff(StrEnum):
    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class Jitter(StrEnum):
    NONE = "none"
    FULL = "full"


class RetryPolicy(BaseModel):
    """How a failing step retries. ``limit`` counts retries after the first attempt."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    limit: int = Field(default=5, ge=0, le=MAX_RETRY_LIMIT)
    delay: float = 10.0
    backoff: Backoff = Backoff.EXPONENTIAL
    max_delay: float | None = None
    jitter: Jitter = Jitter.NONE
    non_retryable: tuple[type[BaseException], ...] = ()

    @field_validator("delay", "max_delay", mode="before")
    @classmethod
    def _duration(cls, value: Duration | None) -> float | None:
        return None if value is None else parse_duration(value, what="retry delay")

    @field_validator("non_retryable", mode="before")
    @classmethod
    def _exception_types(cls, value: Any) -> tuple[type[BaseException], ...]:
        types = tuple(value) if isinstance(value, list | tuple) else (value,)
        for kind in types:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise ValueError(f"non_retryable must hold exception classes, got {kind!r}")
        return types

    def delay_before_retry(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        if self.backoff is Backoff.CONSTANT:
            seconds = self.delay
        elif self.backoff is Backoff.LINEAR:
            seconds = self.delay * retry
        else:
            seconds = self.delay * 2 ** min(retry - 1, 64)
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay)
        seconds = min(seconds, MAX_SECONDS)  # 2^n grows past any date a datetime can hold
        if self.jitter is Jitter.FULL:
            seconds = (rng or random).uniform(0, seconds)
        return seconds


class StepConfig(BaseModel):
    """Config of one ``step.do``. ``timeout`` bounds each attempt, in seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    retries: RetryPolicy = RetryPolicy()
    timeout: float = 600.0
    at_most_once: bool = False

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Duration) -> float:
        seconds = parse_duration(value, what="step timeout")
        if seconds <= 0:
            raise ValueError("step timeout must be more than 0 seconds")
        return seconds


DEFAULT_STEP_CONFIG = StepConfig()


def step_config(config: StepConfig | dict[str, Any] | None, *, step: str) -> StepConfig:
    """Validate a step's config. Raise InvalidConfigError naming the step on any mistake."""
    if config is None:
        return DEFAULT_STEP_CONFIG
    if isinstance(config, StepConfig):
        return config
    if not isinstance(config, dict):
        raise InvalidConfigError(
            f"config of step {step!r} must be a dict or a StepConfig, not {type(config).__name__}"
        )
    try:
        return StepConfig.model_validate(config)
    except InvalidConfigError as exc:
        raise InvalidConfigError(f"config of step {step!r}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidConfigError(f"config of step {step!r} is invalid: {problems}") from None
