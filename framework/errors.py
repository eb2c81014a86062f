"""Every exception the framework raises. This module imports nothing from the framework.

Errors a user may catch derive from :class:`WorkflowError`. :class:`Suspend` is the one
``BaseException``: it unwinds the workflow function when the instance must wait, so that a user's
``except Exception`` can never swallow it.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any


class WorkflowError(Exception):
    """Base class of every error the framework raises on purpose."""


class NonRetryableError(WorkflowError):
    """Raise from a step body to fail the step at once, without using its retry budget."""


class StepFailedError(WorkflowError):
    """A step failed for good: retries ran out, or its body raised :class:`NonRetryableError`.

    Raised at the ``step.do`` call, identically on first run and on replay. ``description`` (and
    ``str(e)``) names the step, the attempts made, and the original error's type and message. When the
    original error's class is a built-in one, the error is an instance of that class too, and reads as
    it: see :func:`failed_step_error`.
    """

    def __init__(self, step: str, attempts: int, error_type: str, error_message: str) -> None:
        self.step = step
        self.attempts = attempts
        self.error_type = error_type
        self.error_message = error_message
        plural = "attempt" if attempts == 1 else "attempts"
        self.description = f"step {step!r} failed after {attempts} {plural}: {error_type}: {error_message}"
        super().__init__(self.description)

    def __reduce__(self) -> tuple[Any, ...]:
        return (failed_step_error, (self.step, self.attempts, self.error_type, self.error_message))

    def __str__(self) -> str:  # not the built-in base's own str (KeyError quotes its argument)
        return str(self.args[0]) if self.args else ""


def failed_step_error(step: str, attempts: int, error_type: str, error_message: str) -> StepFailedError:
    """The StepFailedError for a step that failed with ``error_type``. When that is a built-in exception
    class (``TypeError``, ``KeyError``, ...), the error is an instance of it as well, and reads as the
    original did, as Cloudflare hands it to the workflow: ``except TypeError:`` catches it,
    ``type(e).__name__`` is ``"TypeError"`` and ``str(e)`` is the original message. ``except
    StepFailedError:`` catches it too, and its fields say which step failed. An instance that ends with
    it records ``StepFailedError`` and the ``description`` (``records.ErrorInfo.of``)."""
    cls = _failed_class(error_type)
    try:
        return cls(step, attempts, error_type, error_message)
    except Exception:  # a built-in whose constructor wants more (UnicodeDecodeError): the plain error
        return StepFailedError(step, attempts, error_type, error_message)


@functools.cache
def _failed_class(error_type: str) -> type[StepFailedError]:
    builtin = getattr(builtins, error_type, None)
    # StopIteration would end the coroutine or generator it is raised through, not fail the call.
    if not (isinstance(builtin, type) and issubclass(builtin, Exception)) or issubclass(
        builtin, WorkflowError | StopIteration | StopAsyncIteration
    ):
        return StepFailedError
    try:
        attrs = {"__module__": "builtins", "__qualname__": error_type, "__str__": _original_message}
        return type(error_type, (StepFailedError, builtin), attrs)
    except TypeError:  # a layout that cannot be combined
        return StepFailedError


def _original_message(self: StepFailedError) -> str:
    return self.error_message


class StepTimeoutError(WorkflowError):
    """A step attempt ran past its ``timeout``. It counts as a failed attempt."""


class WorkflowTimeoutError(WorkflowError):
    """A ``wait_for_event`` or a callback timed out (a callback also when its heartbeat timeout
    passed). The workflow may catch it."""


class NonDeterminismError(WorkflowError):
    """On replay, the k-th durable call differs in kind or name from the k-th journal entry."""


class WorkflowCodeError(WorkflowError):
    """Workflow code, outside any step, did what only a step may do: waited on a timer
    (``asyncio.sleep`` with a delay), ran work on another thread, or awaited something no durable call
    completes. The instance errors with this message."""


class HistoryLimitError(WorkflowError):
    """A run made more durable calls than ``max_history`` (``WORKFLOWS_MAX_HISTORY``). The instance
    errors: every resume replays the whole run, so an unbounded history makes each one slower and
    dearer. Split long loops into runs of their own (for example one instance per batch)."""


class InvocationCrashedError(WorkflowError):
    """An invocation died (timeout, out of memory) while the instance was at this point, too often."""


class WorkflowNotFoundError(WorkflowError):
    """No workflow is registered under this name."""


class DuplicateWorkflowError(WorkflowError):
    """Two different functions were registered under one workflow name."""


class InvalidInstanceIdError(WorkflowError, ValueError):
    """An instance id does not match ``^[a-zA-Z0-9_][a-zA-Z0-9_-]{0,99}$``."""


class InstanceAlreadyExistsError(WorkflowError):
    """An instance with this id exists already."""


class InvalidParamsError(WorkflowError, ValueError):
    """Params failed the workflow's model. ``details`` holds pydantic's error list."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class InstanceNotFoundError(WorkflowError):
    """No instance has this id."""


class InvalidStateError(WorkflowError):
    """The operation does not apply to the instance in its current state."""


class InstanceBusyError(InvalidStateError):
    """A write to the instance kept meeting another write in flight on the same item (DynamoDB's
    transaction conflicts), through every retry. Nothing was written: try again."""


class ThrottledError(InstanceBusyError):
    """DynamoDB throttled a write (its throughput or request limits) through every retry, botocore's and
    the store's. Nothing was written: try again later."""


class InvalidConfigError(WorkflowError, ValueError):
    """A step config, duration, step name or datetime is invalid. Raised where it is defined."""


class SerializationError(WorkflowError, TypeError):
    """A step result, output or params value cannot be stored as JSON."""


class PayloadTooLargeError(WorkflowError, ValueError):
    """A step result or output is larger than the configured limit."""


class CallbackFailedError(WorkflowError):
    """A callback's sender reported a failure (``send_callback_failure``). Raised by ``cb.result()`` and
    ``step.wait_for_callback``, identically on replay. ``error_type`` and ``error_message`` hold what the
    sender sent; ``str(e)`` does not, since it is stored and logged and what a sender sends is data."""

    def __init__(self, callback: str, error_type: str, error_message: str) -> None:
        self.callback = callback
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(f"callback {callback!r} failed: its sender reported a failure")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.callback, self.error_type, self.error_message))


class CallbackNotFoundError(WorkflowError):
    """No callback waits under this id: it is malformed or forged, of an earlier run of the instance (a
    restart makes earlier ids invalid), or its instance is gone. Nothing was stored."""


class CallbackCompletedError(InvalidStateError):
    """The callback has its outcome already (one was sent before, or it timed out), or its instance
    finished. Nothing was stored."""


class ApiError(WorkflowError):
    """The HTTP API (``ApiClient``) answered with an error that no other class here stands for: a bad
    request, an unknown route, a refused authorization, an internal error. ``status`` is the HTTP
    status, ``error`` the name in the answer's JSON (empty when the answer had none, as API Gateway's
    own answers), ``message`` its message."""

    def __init__(self, status: int, error: str, message: str) -> None:
        self.status = status
        self.error = error
        self.message = message
        super().__init__(f"{status} {error or 'error'}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.error, self.message))


class ApiUnreachableError(WorkflowError):
    """The HTTP API (``ApiClient``) could not be reached: the connection failed, broke, or timed out.
    A request whose connection broke or timed out may have been done: read to see, or send it again
    (a create that names its id is idempotent)."""


class Suspend(BaseException):
    """Unwinds the workflow function when the instance must wait.

    Caught in exactly one place, the engine's run loop. ``wake_at`` is epoch seconds, or ``None`` to
    wait with no deadline.
    """

    def __init__(
        self, wake_at: float | None, reason: str, *, events: dict[str, frozenset[str]] | None = None
    ) -> None:
        super().__init__(reason)
        self.wake_at = wake_at
        self.reason = reason
        # Event types waited for, each with the keys of the events of that type the waits already
        # knew about: the engine looks once more after releasing, for events sent meanwhile.
        self.events = events or {}


class Stopped(BaseException):
    """The instance was terminated or restarted while this invocation ran it: stop, write nothing."""


class RollbackRequested(BaseException):
    """terminate(rollback=True) reached the run at its first new durable call: the registered undos
    run (framework.engine.saga), then the instance ends terminated. A BaseException: the workflow's
    ``except Exception`` blocks do not swallow it."""


class AttemptInterrupted(BaseException):
    """Raised inside a running step body by the attempt timer. Turned into a failed attempt."""


class BatchFailedError(WorkflowError):
    """A ``step.map`` or ``step.parallel`` ended with more failed items than it tolerates. ``batch``
    holds its :class:`~framework.api.batch.BatchResult`: the items that succeeded, failed or were still
    running when it ended. Raised identically on first run and on replay."""

    def __init__(self, message: str, batch: Any = None) -> None:
        super().__init__(message)
        self.batch = batch


class ChildWorkflowError(WorkflowError):
    """A child instance started by ``step.invoke`` ended errored or terminated. ``child_id`` names it,
    ``status`` is how it ended; ``error_type`` and ``error_message`` are its error (empty when it was
    terminated). Raised identically on first run and on replay."""

    def __init__(
        self, invoke: str, child_id: str, status: str, error_type: str = "", error_message: str = ""
    ) -> None:
        self.invoke = invoke
        self.child_id = child_id
        self.status = status
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(f"child workflow {invoke!r} (instance {child_id!r}) ended {status}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.invoke, self.child_id, self.status, self.error_type, self.error_message))


class UndoFailedError(WorkflowError):
    """Undos failed during a rollback: ``failures`` holds each failed undo's StepFailedError, last
    started first. Raised by ``rollback_all(..., stop_on_undo_failure=True)`` at the first failure."""

    def __init__(self, message: str, failures: list[Exception]) -> None:
        super().__init__(message)
        self.failures = failures


# Framework errors that a child scope or a batch item may end with and that are rebuilt as themselves
# when replay raises them again (see :func:`rebuilt_error`): ``except WorkflowTimeoutError`` around a
# ``step.child`` catches a timed-out wait inside it, on first run and on replay alike.
REBUILT_AS_THEMSELVES: dict[str, type[WorkflowError]] = {
    cls.__name__: cls
    for cls in (
        NonRetryableError,
        StepTimeoutError,
        WorkflowTimeoutError,
        BatchFailedError,
        InvalidConfigError,
    )
}


def rebuilt_error(where: str, fields: dict[str, Any]) -> Exception:
    """The error a child scope or batch item ``where`` failed with, from its recorded ``fields``
    (``type``, ``message``, and for a failed step inside it, ``step`` and ``attempts``). A failed step
    is rebuilt as that step's StepFailedError; a framework error above as itself; anything else as a
    StepFailedError of ``where`` (an instance of the built-in class it names, if any)."""
    error_type, message = str(fields.get("type", "WorkflowError")), str(fields.get("message", ""))
    if "step" in fields:
        return failed_step_error(str(fields["step"]), int(fields.get("attempts", 1)), error_type, message)
    cls = REBUILT_AS_THEMSELVES.get(error_type)
    if cls is not None:
        return cls(message)
    return failed_step_error(where, 1, error_type, message)
