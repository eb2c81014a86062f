"""What a durable call needs apart from replay: name checks, the ``StepContext`` handed to step bodies,
the ``Event`` a wait returns, and the timer that bounds one attempt."""

from __future__ import annotations

import inspect
import json
import re
import signal
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from framework.core.durations import from_epoch
from framework.core.records import JournalEntry
from framework.errors import AttemptInterrupted, InvalidConfigError, StepTimeoutError

T = TypeVar("T")
MAX_STEP_NAME = 256
EVENT_TYPE = re.compile(r"[a-zA-Z0-9_.:-]{1,100}")


def check_event_type(event_type: Any) -> str:
    if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
        raise InvalidConfigError(
            f"event type {event_type!r} is invalid: use 1 to 100 letters, digits, '_', '.', ':' or '-'"
        )
    return event_type


@dataclass(frozen=True, slots=True)
class Event:
    """An event as a wait returns it."""

    type: str
    payload: Any
    timestamp: datetime

    def __getitem__(self, key: str) -> Any:
        """Cloudflare's spelling: ``event["payload"]``, ``event["type"]``, ``event["timestamp"]``."""
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def keys(self) -> tuple[str, ...]:
        return ("type", "payload", "timestamp")


def event_of(entry: JournalEntry) -> Event:
    return Event(
        type=entry.extra["event_type"],
        payload=json.loads(entry.extra["payload"]),
        timestamp=from_epoch(entry.extra["sent_at"]),
    )


def timeout_message(entry: JournalEntry) -> str:
    return (
        f"wait {entry.name!r} for event {entry.extra['event_type']!r} timed out after "
        f"{entry.extra['timeout']:g} s"
    )


@dataclass(frozen=True, slots=True)
class StepContext:
    """Passed to a step body that asks for it: a parameter named ``ctx``, or the one required
    positional parameter of a body that takes no dependencies. Attributes, and Cloudflare's keys:
    ``ctx["attempt"]``, ``ctx["step"]["name"]``, ``ctx["step"]["count"]``, ``ctx["config"]``."""

    attempt: int
    name: str
    count: int  # how many times a step of this name has been called in this run, this one included
    instance_id: str
    idempotency_key: str  # stable per instance, run and step: use it for calls to outside APIs
    config: dict[str, Any] = field(default_factory=dict)  # the step's config, in Cloudflare's shape

    def __getitem__(self, key: str) -> Any:
        """Cloudflare's spelling of the context: ``attempt``, ``step`` (name and count), ``config``."""
        view: dict[str, Any] = {
            "attempt": self.attempt,
            "step": {"name": self.name, "count": self.count},
            "config": self.config,
            "instance_id": self.instance_id,
            "idempotency_key": self.idempotency_key,
        }
        return view[key]


def check_name(name: Any, *, what: str = "step") -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_STEP_NAME:
        raise InvalidConfigError(
            f"{what} name must be a str of 1 to {MAX_STEP_NAME} characters, got {name!r}"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise InvalidConfigError(f"{what} name {name!r} contains control characters")
    try:
        name.encode()
    except UnicodeEncodeError:  # a lone surrogate: the journal item that stores the name could not
        raise InvalidConfigError(f"{what} name {name!r} is not Unicode text (a lone surrogate)") from None
    return name


def wants_context(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in positional and p.default is inspect.Parameter.empty for p in params)


class DeadlineCut(StepTimeoutError):
    """The invocation's deadline, not the step's timeout, cut an attempt short (``engine.Step._cut``)."""


def call_with_timeout(fn: Callable[[], T], seconds: float) -> T:
    """Run ``fn``; raise StepTimeoutError if it runs past ``seconds``. On the main thread a real timer
    interrupts the body; elsewhere the overrun is detected when the body returns."""
    started = time.monotonic()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def interrupt(signum: int, frame: Any) -> None:
            raise AttemptInterrupted

        previous = signal.signal(signal.SIGALRM, interrupt)
        outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            try:
                return fn()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except AttemptInterrupted:
            raise StepTimeoutError(f"attempt ran past its timeout of {seconds:g} s") from None
        finally:
            signal.signal(signal.SIGALRM, previous)
            if outer_delay > 0:  # someone else's timer (a test runner's, say) was running: put it back
                remaining = outer_delay - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(remaining, 0.001), outer_interval)
    result = fn()
    if time.monotonic() - started > seconds:
        raise StepTimeoutError(f"attempt ran past its timeout of {seconds:g} s")
    return result
