"""Sending to a callback: its result, its failure, or a heartbeat (``WorkflowClient.send_callback_*``).

Each send checks, in one atomic write (``Store.send_callback``), that the id names a callback of the
instance's current run, by its token, and that the callback still waits. An outcome is kept as an event
under a key made from the token, on the condition that none is there: of two outcomes, the first counts
and the second is refused with CallbackCompletedError. It wakes the instance. A heartbeat replaces the
callback's previous one if it is later, and wakes nothing. Nothing a sender passes reaches an error
message or a log line.
"""

from __future__ import annotations

from typing import Any

from framework.backends.environment import Environment
from framework.core import serde
from framework.core.callbacks import CALLBACK_EVENT, HEARTBEAT_EVENT, parse_callback_id
from framework.core.records import MAX_ERROR_MESSAGE, EventRecord
from framework.engine.invocation import send_wake
from framework.errors import InvalidConfigError, PayloadTooLargeError

MAX_RESULT_BYTES = 256 * 1024  # as for an event's payload
MAX_ERROR_NAME = 256


def send_success(env: Environment, callback_id: str, result: Any, *, sent_at: float | None = None) -> None:
    """Complete the callback with ``result`` (JSON, at most 256 KiB) and wake its instance."""
    parse_callback_id(callback_id)  # a malformed id first: no need to look at the result
    inner = serde.dumps(result, what="callback result")
    size = len(inner.encode())
    if size > MAX_RESULT_BYTES:
        raise PayloadTooLargeError(f"callback result is {size} bytes; the limit is {MAX_RESULT_BYTES}")
    _send_outcome(env, callback_id, '{"result":' + inner + "}", sent_at)


def send_failure(
    env: Environment, callback_id: str, error: str, message: str = "", *, sent_at: float | None = None
) -> None:
    """Fail the callback: its ``result()`` raises CallbackFailedError with ``error`` (a name, 1 to 256
    characters) and ``message`` (at most 4,096 characters) as ``error_type`` and ``error_message``."""
    parse_callback_id(callback_id)
    if not isinstance(error, str) or not 1 <= len(error) <= MAX_ERROR_NAME:
        raise InvalidConfigError(
            f"a callback failure's error must be a str of 1 to {MAX_ERROR_NAME} characters"
        )
    if not isinstance(message, str) or len(message) > MAX_ERROR_MESSAGE:
        raise InvalidConfigError(
            f"a callback failure's message must be a str of at most {MAX_ERROR_MESSAGE} characters"
        )
    text = serde.dumps({"error": error, "message": message}, what="callback failure")
    _send_outcome(env, callback_id, text, sent_at)


def send_heartbeat(env: Environment, callback_id: str, *, sent_at: float | None = None) -> None:
    """Tell the callback its sender is still at work: its heartbeat deadline moves to now plus its
    ``heartbeat_timeout``. Sending it again at the same time changes nothing; no wake-up is sent."""
    cid = parse_callback_id(callback_id)
    now = env.clock.now() if sent_at is None else sent_at
    env.store.send_callback(cid, EventRecord(cid.heartbeat_key, HEARTBEAT_EVENT, "null", now), replace=True)


def _send_outcome(env: Environment, callback_id: str, text: str, sent_at: float | None) -> None:
    cid = parse_callback_id(callback_id)
    now = env.clock.now() if sent_at is None else sent_at
    env.store.send_callback(cid, EventRecord(cid.outcome_key, CALLBACK_EVENT, text, now))
    send_wake(env, cid.instance_id, None)  # a kick: wakes the wait at once, whatever its deadline
