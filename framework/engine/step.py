"""The ``step`` object a workflow receives: its durable calls, sync or async.

In a sync workflow each call returns its value. In an async workflow (an ``async def`` function, or a
``WorkflowEntrypoint`` whose ``run`` is async) each call returns an awaitable; its identity is taken
when the call is made, in the calling scope (``framework.engine.identity``), and it runs when awaited. The
operations themselves are in ``framework.engine.ops``; this module forms their arguments and drives them.
When the instance must wait, a call raises :class:`~framework.errors.Suspend`, which only
``framework.engine.invocation`` catches.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from framework.api.calls import (
    StepContext,
    call_with_timeout,
    check_event_type,
    check_name,
)
from framework.core.config import step_config
from framework.core.durations import Duration, parse_duration, to_epoch
from framework.core.ids import check_instance_id
from framework.core.records import EntryKind, JournalEntry
from framework.engine import saga
from framework.engine.ops import IN_PROCESS_WAIT, Operation, RunBody, Wait, advance, served
from framework.engine.ops import patch as patch_op
from framework.engine.ops import sleep as sleep_op
from framework.engine.ops import step as step_op
from framework.engine.ops import wait as wait_op
from framework.engine.replay import Replay, step_body
from framework.engine.step_callbacks import CallbackCalls
from framework.engine.step_functions import (
    StepFunction,
    bind,
    is_coroutine_fn,
    name_of,
    positional_count,
)
from framework.errors import InvalidConfigError, NonDeterminismError, RollbackRequested, Suspend

if TYPE_CHECKING:
    from framework.api.registry import Workflow
    from framework.core.config import StepConfig  # a pydantic model: not loaded for steps without a config
    from framework.engine.invocation import Invocation
    from framework.engine.scheduler import Scheduler

__all__ = ["IN_PROCESS_WAIT", "Step", "StepFunction"]
# Re-exported for the tests that pin them.
FREE_CUTS = step_op.FREE_CUTS


class Step(CallbackCalls):
    """The durable calls of one replay. Call it from the workflow's code only: not from step bodies,
    not from threads of your own."""

    def __init__(
        self,
        invocation: Invocation,
        journal: list[JournalEntry],
        crash_charge: int,
        *,
        is_async: bool = False,
    ) -> None:
        self._r = Replay(invocation, journal, crash_charge)
        self._scheduler: Scheduler | None = None
        if is_async:  # asyncio and the body runners load only for async workflows: a sync cold start
            from framework.engine.scheduler import Scheduler  # pays for neither

            self._scheduler = Scheduler(self._r)
        self._functions: dict[str, StepFunction] = {}  # decorated steps by function name: DAG deps
        self._saga = saga.Saga()

    @property
    def problem(self) -> BaseException | None:
        return self._r.problem

    @property
    def undos_failed(self) -> list[str]:
        """The names of the undos that failed in this run's rollback: the instance's error says so."""
        return self._saga.failed

    @property
    def steps_run(self) -> int:
        return self._r.steps_run

    def run(self, workflow: Workflow, event: Any) -> Any:
        """Run the workflow's code on this step object: its output, or what stops it. A workflow that
        fails with undos registered (``with_rollback``) runs them first."""
        if self._scheduler is None:
            try:
                return workflow(event, self)
            except (Exception, RollbackRequested) as exc:
                if self._saga.has_undos() and self._r.inv.failure is None:
                    saga.rollback_sync(self._r.inv.mark_rolling_back, self._saga, exc, stop=False)
                raise
        return self._scheduler.run(self._rolling_back(workflow(event, self)))

    async def _rolling_back(self, run: Any) -> Any:
        try:
            return await run
        except (Exception, RollbackRequested) as exc:
            if self._saga.has_undos() and self._r.inv.failure is None:
                await saga.rollback_async(self._r.inv.mark_rolling_back, self._saga, exc, stop=False)
            raise

    def finish(self) -> None:
        self._r.finish()

    def unreached_error(self) -> NonDeterminismError | None:
        return self._r.unreached_error("stopped")

    def entries(self) -> list[JournalEntry]:
        return self._r.entries()

    def take_pending(self, max_bytes: int) -> tuple[JournalEntry, ...]:
        return self._r.take_pending(max_bytes)

    # -- step.do -------------------------------------------------------------------------------
    def do(
        self,
        name: str | Callable[..., Any] | None = None,
        fn: Callable[..., Any] | None = None,
        *,
        config: StepConfig | dict[str, Any] | None = None,
        concurrent: bool = False,
        depends: Sequence[StepFunction] | None = None,
    ) -> Any:
        """Run ``fn`` as a durable step: ``step.do("name", fn)`` or ``step.do(fn)``, the name defaulting
        to the function's. Without ``fn``, decorate a function: ``@step.do()``, ``@step.do("name",
        config=...)``. A decorated step runs once per replay however often it is called, and takes the
        results of the decorated steps its parameters name (``concurrent=True``: resolved at once), or
        of ``depends``, by position."""
        if callable(name) and fn is None:
            name, fn = None, name
        if name is not None:
            check_name(name)
        label = name if isinstance(name, str) else None
        if fn is None:
            return self._decorator(label, config, concurrent, depends)
        if not callable(fn):
            raise InvalidConfigError(f"step {name!r} needs a callable, got {type(fn).__name__}")
        label = label if label is not None else name_of(fn)
        cfg = step_config(config, step=label)
        return self._call(label, bind(fn, [], positional=0), cfg, is_coroutine_fn(fn))

    def _decorator(
        self,
        name: str | None,
        config: StepConfig | dict[str, Any] | None,
        concurrent: bool,
        depends: Sequence[StepFunction] | None,
    ) -> Callable[[Callable[..., Any]], StepFunction]:
        if depends is not None and not all(isinstance(d, StepFunction) for d in depends):
            raise InvalidConfigError(f"depends of step {name!r} must list functions decorated with step.do")
        if name is None and config is not None:
            step_config(config, step="(unnamed)")  # report a bad config where it is written

        def decorate(fn: Callable[..., Any]) -> StepFunction:
            if not callable(fn):
                raise InvalidConfigError(f"step {name!r} must decorate a callable")
            step_name = name if name is not None else name_of(fn)
            cfg = step_config(config, step=step_name)
            function = StepFunction(self, step_name, fn, cfg, concurrent, tuple(depends or ()))
            self._functions[getattr(fn, "__name__", step_name)] = function
            return function

        return decorate

    def _call(
        self, name: str, body: Callable[[StepContext, Sequence[Any]], Any], cfg: StepConfig, is_async: bool
    ) -> Any:
        claim = self._r.claim(EntryKind.STEP, name)
        return self._perform(
            step_op.run(self._r, claim, name, lambda ctx: body(ctx, ()), cfg, is_async=is_async)
        )

    # -- sleeps ----------------------------------------------------------------------------------
    def sleep(self, name: str, duration: Duration) -> Any:
        """Wait ``duration`` (a timedelta, seconds, or a string such as "2 hours") at no compute cost."""
        check_name(name, what="sleep")
        seconds = parse_duration(duration, what=f"duration of sleep {name!r}")
        claim = self._r.claim(EntryKind.SLEEP, name)
        return self._perform(sleep_op.run(self._r, claim, name, lambda now: now + seconds))

    def sleep_until(self, name: str, when: datetime | int | float) -> Any:
        """Wait until ``when``: a datetime or epoch seconds. A naive datetime is read as the process's
        local time, as Python's ``datetime.timestamp`` reads it (UTC on Lambda)."""
        check_name(name, what="sleep")
        if isinstance(when, datetime) and when.tzinfo is None:
            when = when.astimezone()  # naive: local time; see docs/execution-model.md
        at = to_epoch(when, what=f"time of sleep {name!r}")
        claim = self._r.claim(EntryKind.SLEEP, name)
        return self._perform(sleep_op.run(self._r, claim, name, lambda now: at))

    # -- events ----------------------------------------------------------------------------------
    def wait_for_event(self, name: str, event_type: str, timeout: Duration = "24 hours") -> Any:
        """Wait for the next event of ``event_type`` sent to this instance (first in, first out), an
        :class:`~framework.api.calls.Event`. Raise WorkflowTimeoutError once ``timeout`` passes first."""
        check_name(name, what="wait")
        check_event_type(event_type)
        seconds = parse_duration(timeout, what=f"timeout of wait {name!r}")
        claim = self._r.claim(EntryKind.WAIT, name)
        return self._perform(wait_op.run(self._r, claim, name, event_type, seconds))

    # -- patches (framework.engine.ops.patch) -------------------------------------------------------
    def patched(self, patch_id: str) -> bool:
        """True where this run takes the new code of patch ``patch_id``: a new instance, or one past
        the point where it recorded the old code's path; False for a run that recorded the old path
        there. Not awaited, in async workflows too."""
        return patch_op.patched(self._r, check_name(patch_id, what="patch"))

    def deprecate_patch(self, patch_id: str) -> None:
        """Where the old code of patch ``patch_id`` is gone: replay the marker of runs that took it."""
        patch_op.deprecate_patch(self._r, check_name(patch_id, what="patch"))

    # -- rollbacks (framework.engine.saga) ---------------------------------------------------------
    def with_rollback(
        self,
        name: str,
        *,
        config: StepConfig | dict[str, Any] | None = None,
        undo_config: StepConfig | dict[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], saga.RollbackStep]:
        """Decorate a step that can be undone; give its undo with ``@<step>.undo``, a function of
        ``(error, output)`` run as the durable step ``"<name> (undo)"`` with ``undo_config``."""
        check_name(name)
        step_config(config, step=name)  # report a bad config where it is written
        step_config(undo_config, step=f"{name} (undo)")

        def decorate(fn: Callable[..., Any]) -> saga.RollbackStep:
            if not callable(fn):
                raise InvalidConfigError(f"step {name!r} must decorate a callable")
            return saga.RollbackStep(self, self._saga, name, fn, config, undo_config)

        return decorate

    def rollback_all(self, error: BaseException | None = None, *, stop_on_undo_failure: bool = False) -> Any:
        """Run the undos of the steps with an undo that completed, last started first, each once per
        run; return the errors of the undos that failed (the others still run), or with
        ``stop_on_undo_failure`` raise UndoFailedError at the first. Awaitable in an async workflow."""
        mark, stop = self._r.inv.mark_rolling_back, stop_on_undo_failure
        if self._scheduler is None:
            return saga.rollback_sync(mark, self._saga, error, stop=stop)
        return saga.rollback_async(mark, self._saga, error, stop=stop)

    # -- child workflows (framework.engine.ops.invoke) ------------------------------------------------
    def invoke(
        self,
        name: str,
        workflow: str | Workflow,
        params: Any = None,
        *,
        id: str | None = None,
        timeout: Duration = "24 hours",
    ) -> Any:
        """Start ``workflow`` as a child instance (its id ``id``, or one fixed by this call) and return
        its output once it completes. Raise ChildWorkflowError if it ends errored or terminated, and
        WorkflowTimeoutError, terminating it, if ``timeout`` passes first."""
        from framework.engine.ops import invoke as invoke_op

        check_name(name, what="invoke")
        target = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
        if not isinstance(target, str):
            raise InvalidConfigError(f"invoke {name!r} needs a workflow name or a registered workflow")
        child_id = None if id is None else check_instance_id(id)
        seconds = parse_duration(timeout, what=f"timeout of invoke {name!r}")
        claim = self._r.claim(EntryKind.INVOKE, name)
        return self._perform(invoke_op.run(self._r, claim, name, target, params, child_id, seconds))

    # -- polling ---------------------------------------------------------------------------------
    def wait_for_condition(
        self,
        name: str,
        check: Callable[..., Any],
        *,
        wait_strategy: Callable[[Any, int], Any],
        initial_state: Any = None,
        timeout: Duration = "10 minutes",
    ) -> Any:
        """Run ``check(state, ctx)`` (or ``check(state)``) as a body, starting from ``initial_state``,
        then ask ``wait_strategy(new_state, checks)`` for a duration to wait before the next check, or
        None when done; return the last state. One journal entry for the whole wait. ``timeout`` bounds
        each check."""
        from framework.engine.ops import condition as condition_op

        check_name(name, what="condition")
        if not callable(check) or not callable(wait_strategy):
            raise InvalidConfigError(
                f"condition {name!r} needs a check function and a wait_strategy function"
            )
        seconds = parse_duration(timeout, what=f"timeout of condition {name!r}")
        takes_ctx = positional_count(check) >= 2

        def run_check(state: Any, ctx: StepContext) -> Any:
            return check(state, ctx) if takes_ctx else check(state)

        claim = self._r.claim(EntryKind.CONDITION, name)
        operation = condition_op.run(
            self._r,
            claim,
            name,
            run_check,
            wait_strategy,
            initial_state,
            seconds,
            is_async=is_coroutine_fn(check),
        )
        return self._perform(operation)

    # -- scopes and batches (framework.engine.compose) ----------------------------------------------
    def child(self, name: str, fn: Callable[..., Any]) -> Any:
        """Run ``fn(step)`` (workflow code) in a scope of its own, its result recorded: a replay
        returns that result and runs none of it again. Its error is raised again, the same, on replay."""
        from framework.engine import compose

        check_name(name, what="child")
        compose.check_code(f"child {name!r}", fn, sync=self._scheduler is None)
        code = compose.branch_code(self, fn)
        child = compose.ChildScope(self._r, self._r.claim(EntryKind.CHILD, name), name)
        if self._scheduler is None:
            return compose.child_sync(child, code)
        return compose.child_async(self._scheduler, child, code)

    def parallel(
        self,
        name: str,
        branches: Sequence[Callable[..., Any]],
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | str | None = None,
    ) -> Any:
        """Run each branch, ``fn(step)``, as a child scope: concurrently (at most ``max_concurrency``
        at once) in an async workflow, in order in a sync one. Return a BatchResult; raise
        BatchFailedError once more branches fail than ``tolerated_failures`` allows (by default none)."""
        from framework.engine import compose

        check_name(name, what="parallel")
        if isinstance(branches, str | bytes) or not isinstance(branches, Sequence):
            raise InvalidConfigError(f"branches of parallel {name!r} must be a list of functions")
        for branch in branches:
            compose.check_code(f"a branch of parallel {name!r}", branch, sync=self._scheduler is None)
        codes = [compose.branch_code(self, branch) for branch in branches]
        return self._batch(
            EntryKind.PARALLEL, name, codes, max_concurrency, min_successful, tolerated_failures
        )

    def map(
        self,
        name: str,
        items: Sequence[Any],
        fn: Callable[..., Any] | str | Workflow,
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | str | None = None,
    ) -> Any:
        """Run ``fn(step, item, index)`` for each item, each as a child scope; as ``parallel`` does.
        With a workflow (its name, or the registered workflow) instead of ``fn``, run each item as a
        child instance of it, the item its params, at most ``max_concurrency`` (by default 100) at
        once, each in invocations of its own; the results are the children's outputs."""
        from framework.api.registry import Workflow
        from framework.engine import compose

        check_name(name, what="map")
        if isinstance(items, str | bytes | dict) or not isinstance(items, Sequence):
            raise InvalidConfigError(
                f"items of map {name!r} must be a sequence such as a list (a set's order is not fixed), "
                f"got {type(items).__name__}"
            )
        if isinstance(fn, str | Workflow):
            return self._fan_out(name, fn if isinstance(fn, str) else fn.name, list(items),
                                 max_concurrency, min_successful, tolerated_failures)  # fmt: skip
        compose.check_code(f"the function of map {name!r}", fn, sync=self._scheduler is None)
        items = list(items)
        codes = [compose.branch_code(self, fn, item, index, items) for index, item in enumerate(items)]
        return self._batch(EntryKind.MAP, name, codes, max_concurrency, min_successful, tolerated_failures)

    def _batch(
        self,
        kind: EntryKind,
        name: str,
        codes: list[Callable[[], Any]],
        max_concurrency: Any,
        min_successful: Any,
        tolerated_failures: Any,
    ) -> Any:
        from framework.api.batch import CompletionPolicy, check_concurrency
        from framework.engine import compose

        what = f"{kind.value} {name!r}"
        policy = CompletionPolicy.of(what, len(codes), min_successful, tolerated_failures)
        concurrency = check_concurrency(what, max_concurrency)
        # Raises InvalidConfigError, before any item runs, if the history cannot hold the batch.
        batch = compose.Batch(self._r, kind, name, codes, policy, concurrency, sync=self._scheduler is None)
        if self._scheduler is None:
            return compose.run_sync(batch)
        return compose.run_async(self._scheduler, batch)

    def _fan_out(
        self,
        name: str,
        workflow: str,
        items: list[Any],
        max_concurrency: Any,
        min_successful: Any,
        tolerated_failures: Any,
    ) -> Any:
        from framework.api.batch import CompletionPolicy, check_concurrency
        from framework.engine.ops import fanout

        what = f"map {name!r}"
        fanout.check_items(name, len(items))
        policy = CompletionPolicy.of(what, len(items), min_successful, tolerated_failures)
        limit = check_concurrency(what, max_concurrency) or fanout.DEFAULT_CONCURRENCY
        self._r.inv.env.registry.get(workflow)  # an unknown workflow fails here, before anything runs
        claim = self._r.claim(EntryKind.MAP, name)
        return self._perform(fanout.run(self._r, claim, name, workflow, items, policy, limit))

    # -- driving -----------------------------------------------------------------------------------
    def _perform(self, operation: Operation) -> Any:
        """Sync: run the operation now and return its value. Async: an awaitable that runs it."""
        if self._scheduler is not None:
            return self._scheduler.perform(operation)
        value: Any = None
        error: Exception | None = None
        try:
            while True:
                done, out = advance(operation, value, error)
                if done:
                    return out
                value, error = None, None
                try:
                    value = self._serve(served(self._r, out))
                except Exception as exc:  # the body's failure: the operation decides what it means
                    error = exc
        finally:
            operation.close()

    def _serve(self, request: RunBody | Wait) -> Any:
        """Serve a request inline, on the workflow's thread (a sync workflow)."""
        if isinstance(request, RunBody):
            with step_body(self._r):
                result = call_with_timeout(request.body, request.seconds)
                if inspect.isawaitable(result):  # an async body in a sync workflow
                    from framework.engine import bodies

                    result = bodies.await_on_body_loop(result, request.seconds)
                return result
        inv = self._r.inv
        gap = request.wake_at - inv.now()
        if gap <= 0:
            return None
        if gap < IN_PROCESS_WAIT and inv.time_left() - gap > inv.margin:
            inv.env.clock.sleep(gap)
            return None
        events = {request.event_type: request.seen} if request.event_type is not None else None
        self._r.waits = () if request.shown is None else (request.shown,)
        self._r.stop(Suspend(request.wake_at, request.reason, events=events))
        return None
