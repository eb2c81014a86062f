"""Step configuration: retry policy, attempt timeout and the at-most-once switch.

Accepts Cloudflare's dict shape (``{"retries": {"limit": 5, "delay": "10 seconds", "backoff":
"exponential"}, "timeout": "10 minutes"}``) or the typed models ``StepConfig`` and ``RetryPolicy``. Both
are validated when the step is defined; a config that gives only some keys takes the defaults for the
rest.

The models are pydantic's, defined in ``framework.core.config_models`` and loaded on first use (attribute
access here, or ``from framework import StepConfig``). A step with no config never loads them: it gets
``DEFAULTS``, which holds the same values without pydantic, so a worker starts without pydantic unless a
workflow uses it.
"""

from __future__ import annotations

import importlib
import random
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from framework.core.durations import MAX_SECONDS
from framework.errors import InvalidConfigError

if TYPE_CHECKING:
    from framework.core.config_models import DEFAULT_STEP_CONFIG, RetryPolicy, StepConfig

# Each attempt is kept in the step's journal item (errors cut to 512 characters): 101 attempts stay far
# below the 400 KB item limit.
MAX_RETRY_LIMIT = 100
# The defaults of RetryPolicy and StepConfig, and of DEFAULTS.
DEFAULT_LIMIT = 5
DEFAULT_DELAY = 10.0
DEFAULT_TIMEOUT = 600.0


class Backoff(StrEnum):
    CONSTANT = "constant"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class Jitter(StrEnum):
    NONE = "none"
    FULL = "full"


def retry_delay(
    delay: float,
    backoff: Backoff,
    max_delay: float | None,
    jitter: Jitter,
    retry: int,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``retry`` (1, 2, ...) of a policy with these fields."""
    if backoff is Backoff.CONSTANT:
        seconds = delay
    elif backoff is Backoff.LINEAR:
        seconds = delay * retry
    else:
        seconds = delay * 2 ** min(retry - 1, 64)
    if max_delay is not None:
        seconds = min(seconds, max_delay)
    seconds = min(seconds, MAX_SECONDS)  # 2^n grows past any date a datetime can hold
    if jitter is Jitter.FULL:
        seconds = (rng or random).uniform(0, seconds)
    return seconds


class _Delegating:
    """A read-only stand-in for a model. Attributes it does not hold come from the real model, so that
    code written against StepConfig works on DEFAULTS too (loading pydantic then)."""

    __slots__ = ()

    def _model(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._model(), name)


class _DefaultRetries(_Delegating):
    """``RetryPolicy()``'s values, without pydantic."""

    __slots__ = ()
    limit = DEFAULT_LIMIT
    delay = DEFAULT_DELAY
    backoff = Backoff.EXPONENTIAL
    max_delay: float | None = None
    jitter = Jitter.NONE
    non_retryable: tuple[type[BaseException], ...] = ()
    retryable: tuple[type[BaseException], ...] | None = None

    def may_retry(self, error: BaseException) -> bool:
        """Every error is retryable under the default policy."""
        return True

    def delay_before_retry(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        return retry_delay(self.delay, self.backoff, self.max_delay, self.jitter, retry, rng)

    def _model(self) -> Any:
        return _models().DEFAULT_STEP_CONFIG.retries


class _DefaultStepConfig(_Delegating):
    """``StepConfig()``'s values, without pydantic."""

    __slots__ = ()
    retries = _DefaultRetries()
    timeout = DEFAULT_TIMEOUT
    at_most_once = False

    def _model(self) -> Any:
        return _models().DEFAULT_STEP_CONFIG


# What a step with no config gets. Read-only, like the model it stands for.
DEFAULTS = _DefaultStepConfig()

_MODEL_NAMES = frozenset({"RetryPolicy", "StepConfig", "DEFAULT_STEP_CONFIG"})


def _models() -> Any:
    return importlib.import_module("framework.core.config_models")


def __getattr__(name: str) -> Any:
    """``RetryPolicy``, ``StepConfig`` and ``DEFAULT_STEP_CONFIG``, loaded with pydantic on first use."""
    if name in _MODEL_NAMES:
        value = getattr(_models(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def config_view(cfg: Any) -> dict[str, Any]:
    """A step's config in Cloudflare's shape, as ``ctx["config"]`` shows it to the step body."""
    retries = cfg.retries
    return {
        "retries": {
            "limit": retries.limit,
            "delay": f"{retries.delay:g} seconds",
            "backoff": str(retries.backoff),
        },
        "timeout": f"{cfg.timeout:g} seconds",
    }


def step_config(config: StepConfig | dict[str, Any] | None, *, step: str) -> StepConfig:
    """Validate a step's config. Raise InvalidConfigError naming the step on any mistake.

    No config gives ``DEFAULTS``: it has StepConfig's fields and methods but is not a pydantic model."""
    if config is None:
        return cast("StepConfig", DEFAULTS)
    from pydantic import ValidationError

    from framework.core.config_models import StepConfig

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


__all__ = [
    "DEFAULTS",
    "DEFAULT_DELAY",
    "DEFAULT_LIMIT",
    "DEFAULT_STEP_CONFIG",
    "DEFAULT_TIMEOUT",
    "MAX_RETRY_LIMIT",
    "Backoff",
    "Jitter",
    "RetryPolicy",
    "StepConfig",
    "config_view",
    "retry_delay",
    "step_config",
]
