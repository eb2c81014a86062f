"""Powertools Metrics in CloudWatch's embedded metric format (EMF): what the engine and the handlers
count, printed as one EMF line per workflow when a handler invocation ends.

Contract:

- :func:`record` adds one value of a metric named in :data:`UNITS`, under the one dimension
  ``workflow`` (the registered workflow's name). Nothing else goes in: no instance id, param, payload
  or result is ever a dimension, a value or metadata.
- Values are collected only while a handler invocation is open (:func:`flushed`, :func:`invocation`).
  Outside one (the CLI, a script, a test that drives the engine directly), :func:`record` does nothing,
  so nothing accumulates in a long-lived process.
- When the outermost invocation closes, what it collected is printed to stdout, once: one JSON line per
  workflow that recorded something, each under the namespace :func:`namespace` (Powertools flushes a
  set early on its own once one metric holds 100 values, as EMF allows no more).
- Printed on Lambda unless ``POWERTOOLS_METRICS_DISABLED`` is true; off Lambda (a local run, a test)
  only when ``POWERTOOLS_METRICS_DISABLED`` is set false, so a local run prints no metric lines.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

DEFAULT_NAMESPACE = "LambdaWorkflows"
DIMENSION = "workflow"
COUNT, MILLISECONDS = "Count", "Milliseconds"
# Every metric the framework emits, with its unit. docs/observability.md describes each one.
UNITS: dict[str, str] = {
    "InstancesCreated": COUNT,  # by the API and the inbox (WorkflowClient.create and create_batch)
    "InstancesStarted": COUNT,  # a run's first invocation
    "InstancesCompleted": COUNT,
    "InstancesErrored": COUNT,
    "InstancesTerminated": COUNT,
    "StepsCompleted": COUNT,  # recorded now; a replayed step counts nothing
    "StepRetries": COUNT,  # failed attempts with a retry to come
    "StepsFailed": COUNT,  # steps that failed for good
    "StepDuration": MILLISECONDS,  # one value per attempt run (succeeded or failed)
    "WakeUpLag": MILLISECONDS,  # how late a wake-up ran after the time its sleep or backoff asked for
}
_TRUE = {"1", "true", "yes", "on", "y", "t"}


class _Open:
    """What the open handler invocations collected: one Powertools metric set per workflow."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.sets: dict[str, AmazonCloudWatchEMFProvider] = {}


_open = _Open()
H = TypeVar("H", bound=Callable[..., Any])


def namespace() -> str:
    """``POWERTOOLS_METRICS_NAMESPACE`` (the template sets it), else ``LambdaWorkflows``."""
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


def enabled() -> bool:
    """Whether metric lines are printed (see the module's contract)."""
    flag = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower()
    if flag:
        return flag not in _TRUE
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def record(workflow: str, name: str, value: float = 1.0) -> None:
    """Add ``value`` to metric ``name`` (a key of UNITS) of ``workflow``, if an invocation is open."""
    unit = UNITS[name]  # a KeyError for an unknown name: a bug, found by the tests
    with _open.lock:
        if _open.depth == 0 or not enabled():
            return
        metric_set = _open.sets.get(workflow)
        if metric_set is None:
            metric_set = _open.sets[workflow] = _new_set(workflow)
        metric_set.add_metric(name=name, unit=unit, value=value)


def seconds(workflow: str, name: str, elapsed: float) -> None:
    """Record a duration given in seconds as milliseconds (never below 0)."""
    record(workflow, name, round(max(elapsed, 0.0) * 1000, 3))


@contextlib.contextmanager
def invocation() -> Iterator[None]:
    """Collect what is recorded while open; the outermost one prints it when it closes."""
    with _open.lock:
        _open.depth += 1
    try:
        yield
    finally:
        with _open.lock:
            _open.depth -= 1
            pending = list(_open.sets.values()) if _open.depth == 0 else []
            if _open.depth == 0:
                _open.sets.clear()
        for metric_set in pending:
            if metric_set.metric_set:  # not already flushed by Powertools at 100 values
                metric_set.flush_metrics()


def flushed(handler: H) -> H:
    """Decorate a Lambda handler: its invocation's metrics are printed once, when it returns or raises."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with invocation():
            return handler(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _new_set(workflow: str) -> AmazonCloudWatchEMFProvider:
    # Imported on first use: a run with metrics off never loads it.
    from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
        AmazonCloudWatchEMFProvider,
    )

    # service="": no "service" dimension beside "workflow", whatever POWERTOOLS_SERVICE_NAME says, so
    # that the dashboard's metrics have one dimension set.
    # A default dimension, not an added one: it outlives the early flush at 100 values.
    return AmazonCloudWatchEMFProvider(
        namespace=namespace(), service="", default_dimensions={DIMENSION: workflow}
    )
