"""The deterministic loop that runs an async workflow, and the driver that serves its durable calls.

Workflow code runs on :class:`WorkflowLoop`, an event loop of our own with no timers and no I/O: its
callbacks run in the order they were scheduled, so the workflow's code runs the same way on every
replay. Every task it creates is a scope of its own (``framework.engine.identity``). Step bodies run elsewhere
(``framework.engine.bodies``) and come back through a queue; the driver waits on that queue only when no
workflow code can run.

When every branch waits (sleeps, retry backoffs, events) and no body runs, the driver either sleeps
in-process (a wait shorter than ``IN_PROCESS_WAIT``, time allowing) or suspends the run with the
earliest wake time, after cancelling its tasks.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from framework.core.progress import shown_waits
from framework.engine import bodies
from framework.engine.identity import CURRENT, Scope
from framework.engine.ops import IN_PROCESS_WAIT, Operation, RunBody, Wait, advance, served
from framework.engine.replay import Replay
from framework.errors import Suspend, WorkflowCodeError

DRAIN_ROUNDS = 100  # passes given to cancelled tasks to finish (a task that catches cancellation)


class WorkflowLoop(asyncio.AbstractEventLoop):
    """An event loop for workflow code: ready callbacks only, run first in, first out.

    Timers (``asyncio.sleep`` with a delay, ``asyncio.timeout``), executors and I/O raise
    WorkflowCodeError: they would make the workflow's path depend on timing. Durable calls are the
    workflow's way to wait."""

    def __init__(self, root: Any) -> None:
        self._ready: deque[tuple[asyncio.Handle, Callable[..., Any], tuple[Any, ...], Any]] = deque()
        self._root_scope = root
        self._closed = False
        self._running = False
        self.tasks: list[asyncio.Task[Any]] = []
        self.errors: list[dict[str, Any]] = []  # what asyncio reported through the exception handler

    # -- what asyncio's tasks and futures use ---------------------------------------------------
    def call_soon(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> asyncio.Handle:  # type: ignore[override]
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append((handle, callback, args, context))
        return handle

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None, context: Any = None) -> asyncio.Task[Any]:
        """A task in a scope of its own: the next position of the scope that creates it. A context
        passed in is copied: tasks sharing one would share a scope, and their calls' identities would
        then depend on how their steps interleave."""
        ctx = context.copy() if context is not None else contextvars.copy_context()
        ctx.run(CURRENT.set, CURRENT.get(self._root_scope).child())
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=self, name=name, context=ctx)
        self.tasks.append(task)
        return task

    def start_root(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self.start_in(coro, self._root_scope)

    def start_in(self, coro: Coroutine[Any, Any, Any], scope: Scope) -> asyncio.Task[Any]:
        """A task in ``scope``, taking no position of its creator's: a child scope, or a batch item,
        whose identity was claimed already."""
        ctx = contextvars.copy_context()
        ctx.run(CURRENT.set, scope)
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=self, context=ctx)
        self.tasks.append(task)
        return task

    def get_debug(self) -> bool:
        return False

    def time(self) -> float:
        return time.monotonic()

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)  # unretrieved errors of cancelled tasks: nothing to report

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    # -- what workflow code must not use --------------------------------------------------------
    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:  # type: ignore[override]
        raise WorkflowCodeError(
            "workflow code waited on a timer (asyncio.sleep with a delay, asyncio.timeout, wait_for): "
            "use step.sleep to wait, and a step's timeout config to bound its work"
        )

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:  # type: ignore[override]
        return self.call_later(0, callback)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any, context: Any = None) -> Any:  # type: ignore[override]
        raise WorkflowCodeError("workflow code handed work to another thread: do that in a step body")

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:  # type: ignore[override]
        raise WorkflowCodeError("workflow code ran a function in an executor: run it as a step (step.do)")

    # -- driving --------------------------------------------------------------------------------
    def run_ready(self) -> bool:
        """Run callbacks until none is ready. Return whether any ran."""
        ran = False
        outer = asyncio._get_running_loop()
        asyncio._set_running_loop(self)
        self._running = True
        try:
            while self._ready:
                handle, callback, args, context = self._ready.popleft()
                if handle.cancelled():
                    continue
                ran = True
                if context is not None:
                    context.run(callback, *args)
                else:
                    callback(*args)
        finally:
            self._running = False
            asyncio._set_running_loop(outer)
        return ran


@dataclass(slots=True)
class _Waiting:
    wait: Wait
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Running:
    future: asyncio.Future[Any]
    deadline: float  # time.monotonic()
    seconds: float
    cancel: Callable[[], None]
    result: list[tuple[Any, BaseException | None]] = field(default_factory=list)


class Scheduler:
    """Runs one async workflow coroutine for one invocation of the run ``replay``."""

    def __init__(self, replay: Replay) -> None:
        self.r = replay
        self.loop = WorkflowLoop(replay.root)  # type: ignore[abstract]  # no I/O: those stay abstract
        self._waiting: list[_Waiting] = []
        self._running: dict[int, _Running] = {}
        self._finished: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._ids = 0

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run the workflow to its end or until it must wait. Return its output; raise its error, or
        the Suspend, Stopped or engine failure that ends the invocation."""
        root = self.loop.start_root(coro)
        try:
            self._drive(root)
        finally:
            self._close()
        if self.r.problem is not None:
            raise self.r.problem
        if self.r.inv.failure is not None:
            raise self.r.inv.failure
        fatal = self._fatal()
        if fatal is not None:
            raise fatal
        return root.result()

    async def perform(self, operation: Operation) -> Any:
        """Drive a durable operation from workflow code: serve each of its requests."""
        value: Any = None
        error: Exception | None = None
        try:
            while True:
                done, out = advance(operation, value, error)
                if done:
                    return out
                value, error = None, None
                try:
                    value = await self._serve(served(self.r, out))
                except Exception as exc:  # the body's failure: the operation decides what it means
                    error = exc
        finally:
            operation.close()

    async def _serve(self, request: RunBody | Wait) -> Any:
        future = self.loop.create_future()
        if isinstance(request, Wait):
            if request.wake_at <= self.r.inv.now():
                return None
            self._waiting.append(_Waiting(request, future))
            return await future
        self._ids += 1
        key = self._ids

        def done(value: Any, error: BaseException | None) -> None:  # on a body's thread
            running.result.append((value, error))
            self._finished.put(key)

        # Until the body starts (a plain function may queue for a thread), only the invocation's time
        # bounds it; from its start, its attempt's time.
        inv = self.r.inv
        latest = time.monotonic() + max(inv.time_left() - inv.margin / 2, request.seconds)
        running = _Running(future, latest, request.seconds, lambda: None)

        def started() -> None:  # on the body's thread
            running.deadline = min(time.monotonic() + request.seconds, latest)
            self._finished.put(0)  # wake the driver: the deadline moved closer

        self._running[key] = running
        running.cancel = bodies.start(
            request.body, request.seconds, done, is_async=request.is_async, owner=self.r, started=started
        )
        return await future

    # -- the driver -----------------------------------------------------------------------------
    def _drive(self, root: asyncio.Task[Any]) -> None:
        while True:
            self.loop.run_ready()
            if root.done() or self._stopping():
                if self._running and self._finishing_bodies():
                    self._collect()  # let them be recorded: their work happens anyway
                    continue
                return
            if self._running:
                self._collect()
                continue
            if not self._waiting:
                self.r.problem = WorkflowCodeError(
                    "the workflow awaits something that no durable call will complete (an asyncio "
                    "Event, Future or Queue that nothing sets): every branch is blocked"
                )
                return
            if not self._wait_in_process():
                self.r.problem = self._suspension()
                return

    def _finishing_bodies(self) -> bool:
        """A suspension (a pause, too little time) stops the run while bodies run: wait for them, each
        bounded by its attempt's deadline, so that their steps are recorded and do not run again."""
        # The root may be done already: gather hands a branch's Suspend to it at once.
        return isinstance(self.r.problem, Suspend) and self.r.inv.failure is None and self._fatal() is None

    def _stopping(self) -> bool:
        return self.r.problem is not None or self.r.inv.failure is not None or self._fatal() is not None

    def _fatal(self) -> BaseException | None:
        """What a task died of that must end the invocation however the workflow handles it: an
        engine failure, a stop, a crash injected by a test."""
        for task in self.loop.tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None and not isinstance(error, Exception | Suspend):
                    return error
        return None

    def _collect(self) -> None:
        """Wait for a body to end (or its deadline, or the next wait that ends in-process), then hand
        what ended to the workflow."""
        now = time.monotonic()
        until = min(r.deadline for r in self._running.values())
        due = self._next_due()
        if due is not None:
            until = min(until, now + max(due - self.r.inv.now(), 0.0))
        try:
            key = self._finished.get(timeout=max(until - now, 0.0))
        except queue.Empty:
            key = None
        if key is not None:
            running = self._running.pop(key, None)
            if running is not None and not running.future.done():
                value, error = running.result[0]
                if error is not None:
                    running.future.set_exception(error)
                else:
                    running.future.set_result(value)
        now = time.monotonic()
        for k, running in list(self._running.items()):
            if now >= running.deadline:
                del self._running[k]
                running.cancel()
                running.future.set_exception(bodies.timeout_error(running.seconds))
        self._wake_due()

    def _next_due(self) -> float | None:
        return min((w.wait.wake_at for w in self._waiting), default=None)

    def _wake_due(self) -> None:
        now = self.r.inv.now()
        for waiting in [w for w in self._waiting if w.wait.wake_at <= now]:
            self._waiting.remove(waiting)
            if not waiting.future.done():
                waiting.future.set_result(None)

    def _wait_in_process(self) -> bool:
        """Every branch waits: sleep until the earliest wake time if it is near and time allows."""
        due = self._next_due()
        assert due is not None
        inv = self.r.inv
        gap = due - inv.now()
        if gap >= IN_PROCESS_WAIT or inv.time_left() - gap <= inv.margin:
            return False
        inv.env.clock.sleep(gap)
        self._wake_due()
        return True

    def _suspension(self) -> Suspend:
        due = self._next_due()
        reasons = sorted({w.wait.reason for w in self._waiting})
        events: dict[str, frozenset[str]] = {}
        for w in self._waiting:
            if w.wait.event_type is not None:
                events[w.wait.event_type] = events.get(w.wait.event_type, frozenset()) | w.wait.seen
        self.r.waits = shown_waits([w.wait.shown for w in self._waiting if w.wait.shown is not None])
        return Suspend(due, "; ".join(reasons), events=events)

    def _close(self) -> None:
        """Cancel what is left: tasks, waits, and coroutine bodies (threads are left to finish)."""
        self.r.closing = True
        for running in self._running.values():
            running.cancel()
        self._running.clear()
        self._waiting.clear()
        for _ in range(DRAIN_ROUNDS):
            pending = [t for t in self.loop.tasks if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            self.loop.run_ready()
        for task in self.loop.tasks:  # mark every error retrieved: the run's outcome says it all
            if task.done() and not task.cancelled():
                task.exception()
        self.loop.close()
