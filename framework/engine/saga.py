"""Saga rollbacks, in Cloudflare's Python shape: ``@step.with_rollback(name)`` marks a step that can be
undone, ``@charge.undo`` gives its undo, and ``step.rollback_all(error)`` runs the undos of the steps
that completed, last started first. A workflow that fails with undos registered runs them before it ends.

Each undo is a durable step of its own, named ``"<name> (undo)"``, with ``undo_config``: recorded like any
step, so a replay after a crash mid-rollback returns the recorded undos and runs only those left. The
undo stack is rebuilt on every replay from the calls the workflow makes (their order is the call order,
which replay keeps), so nothing about it is stored apart from the steps themselves.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from framework.core.logs import logger
from framework.errors import InvalidConfigError, UndoFailedError, WorkflowError

if TYPE_CHECKING:
    from framework.engine.step import Step

_PENDING = object()  # a slot whose step has not completed (yet, or ever): nothing to undo


@dataclass
class _Slot:
    """One call of a step with an undo, in call order. ``output`` is set once the step completed."""

    step: RollbackStep
    output: Any = _PENDING


@dataclass
class Saga:
    """The undo stack of one replay."""

    slots: list[_Slot] = field(default_factory=list)
    rolled_back: bool = False
    failed: list[str] = field(default_factory=list)  # the names of the undos that failed, in order

    def has_undos(self) -> bool:
        return not self.rolled_back and any(s.output is not _PENDING for s in self.slots)

    def undos(self, mark: Callable[[], None]) -> list[_Slot]:
        """The slots to undo, last called first; each once per run, so they are taken off the stack.
        If there are any, the instance shows rollingBack from now until its release."""
        done = [s for s in reversed(self.slots) if s.output is not _PENDING]
        self.slots.clear()
        self.rolled_back = True
        if any(s.step.has_undo for s in done):
            mark()
        return done


class RollbackStep:
    """A step with an undo. Call it (``await charge()`` in an async workflow) to run the step."""

    def __init__(
        self, step: Step, saga: Saga, name: str, fn: Callable[..., Any], config: Any, undo_config: Any
    ) -> None:
        self._step, self._saga, self.name, self._fn = step, saga, name, fn
        self._config, self._undo_config = config, undo_config
        self._undo: Callable[..., Any] | None = None

    def undo(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn(error, output)`` as this step's undo; return it unchanged."""
        if not callable(fn):
            raise InvalidConfigError(f"the undo of step {self.name!r} must be a callable")
        self._undo = fn
        return fn

    def __call__(self) -> Any:
        slot = _Slot(self)
        self._saga.slots.append(slot)  # at the call: the stack follows the order steps start in
        result = self._step.do(self.name, self._fn, config=self._config)
        if not inspect.isawaitable(result):
            slot.output = result
            return result

        async def completed() -> Any:
            slot.output = await result
            return slot.output

        return completed()

    @property
    def has_undo(self) -> bool:
        return self._undo is not None

    def undo_step(self, error: BaseException | None, output: Any) -> Any:
        """Run the undo as the durable step ``"<name> (undo)"``."""
        undo = self._undo
        if undo is None:
            return None
        return self._step.do(f"{self.name} (undo)", lambda: undo(error, output), config=self._undo_config)


def rollback_sync(
    mark: Callable[[], None], saga: Saga, error: BaseException | None, *, stop: bool
) -> list[Exception]:
    """Run the registered undos, last first; return the errors of those that failed. ``mark`` shows the
    instance rollingBack, once, if there is anything to undo."""
    failures: list[Exception] = []
    for slot in saga.undos(mark):
        try:
            slot.step.undo_step(error, slot.output)
        except WorkflowError as exc:
            saga.failed.append(f"{slot.step.name} (undo)")
            _failed(slot, exc, failures, stop)
    return failures


async def rollback_async(
    mark: Callable[[], None], saga: Saga, error: BaseException | None, *, stop: bool
) -> list[Exception]:
    failures: list[Exception] = []
    for slot in saga.undos(mark):
        try:
            result = slot.step.undo_step(error, slot.output)
            if inspect.isawaitable(result):
                await result
        except WorkflowError as exc:
            saga.failed.append(f"{slot.step.name} (undo)")
            _failed(slot, exc, failures, stop)
    return failures


def _failed(slot: _Slot, exc: WorkflowError, failures: list[Exception], stop: bool) -> None:
    failures.append(exc)
    logger.warning("undo failed", extra={"step": slot.step.name, "error": type(exc).__name__})
    if stop:
        raise UndoFailedError(f"the undo of step {slot.step.name!r} failed; the rollback stopped", failures)
