"""Decorated steps (``@step.do``) and the argument helpers of the ``step`` facade.

A :class:`StepFunction` runs once per replay however often it is called, and takes the results of the
decorated steps its parameters name. The helpers bind a step function's arguments as its signature asks.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from framework.api.calls import StepContext, check_name, wants_context
from framework.core.durations import Duration, parse_duration
from framework.core.records import EntryKind
from framework.engine.ops import step as step_op
from framework.errors import InvalidConfigError

if TYPE_CHECKING:
    from framework.core.config import StepConfig
    from framework.engine.step import Step


class StepFunction:
    """A function decorated with ``step.do``: calling it runs the step, once per replay; later calls
    return (or, async, resolve to) the same outcome."""

    def __init__(
        self,
        step: Step,
        name: str,
        fn: Callable[..., Any],
        cfg: StepConfig,
        concurrent: bool,
        depends: tuple[StepFunction, ...],
    ) -> None:
        self.name = name
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", name)
        self.__doc__ = getattr(fn, "__doc__", None)
        self._step = step
        self._fn = fn
        self._cfg = cfg
        self._concurrent = concurrent
        self._depends = depends
        self._outcome: Any = None  # async: the task; sync: (value, error)
        self._called = False
        self._resolving = False  # its dependencies are being started: a cycle comes back here

    def __call__(self) -> Any:
        """Run the step. Async: once per replay, every call awaiting the same outcome (Cloudflare's
        form). Sync: each call is a step of its own, as ``step.do`` is; as a dependency, once."""
        if self._called and self._step._scheduler is not None:
            return self._outcome
        if self._resolving:
            raise InvalidConfigError(f"step {self.name!r} depends on itself, through its dependencies")
        self._resolving = True
        try:
            self._outcome = self._start()
        finally:
            self._resolving = False
        self._called = True
        return self._outcome if self._step._scheduler is not None else self.resolved()

    def _start(self) -> Any:
        """Sync: run the step, its dependencies first, and return (value, error). Async: take the
        identities of the dependencies and of this step, and return the task that runs them."""
        known = set(self._step._functions) - {self.__name__}
        by_name = [p for p in parameters(self._fn) if p in known and p != "ctx"]
        deps = [*self._depends, *(self._step._functions[p] for p in by_name)]
        body = bind(self._fn, by_name, positional=len(self._depends))
        is_async = is_coroutine_fn(self._fn)
        scheduler = self._step._scheduler
        if scheduler is None:
            try:
                return (self._run(body, [dep.resolved() for dep in deps], is_async), None)
            except Exception as exc:
                return (None, exc)
        awaitables = [dep() for dep in deps]  # their identities first, in order, then this step's
        claim = self._step._r.claim(EntryKind.STEP, self.name)

        async def resolve_and_run() -> Any:
            if self._concurrent:
                import asyncio  # loaded already: this runs on the workflow loop

                values = list(await asyncio.gather(*awaitables))
            else:
                values = [await a for a in awaitables]
            operation = step_op.run(
                self._step._r, claim, self.name, lambda ctx: body(ctx, values), self._cfg, is_async=is_async
            )
            return await scheduler.perform(operation)

        return scheduler.loop.create_task(resolve_and_run())

    def resolved(self) -> Any:
        """Sync: the outcome of this step's first run in this replay, running it if it has not run."""
        if not self._called:
            self()
        value, error = self._outcome
        if error is not None:
            raise error
        return value

    def _run(
        self, body: Callable[[StepContext, Sequence[Any]], Any], values: list[Any], is_async: bool
    ) -> Any:
        claim = self._step._r.claim(EntryKind.STEP, self.name)
        operation = step_op.run(
            self._step._r, claim, self.name, lambda ctx: body(ctx, values), self._cfg, is_async=is_async
        )
        return self._step._perform(operation)


def callback_times(
    name: str, timeout: Duration, heartbeat_timeout: Duration | None
) -> tuple[float, float | None]:
    check_name(name, what="callback")
    seconds = parse_duration(timeout, what=f"timeout of callback {name!r}")
    if heartbeat_timeout is None:
        return seconds, None
    heartbeat = parse_duration(heartbeat_timeout, what=f"heartbeat_timeout of callback {name!r}")
    if heartbeat <= 0:
        raise InvalidConfigError(f"heartbeat_timeout of callback {name!r} must be more than 0 s")
    return seconds, heartbeat


def name_of(fn: Callable[..., Any]) -> str:
    return check_name(getattr(fn, "__name__", None) or type(fn).__name__)


def is_coroutine_fn(fn: Callable[..., Any]) -> bool:
    target = getattr(fn, "func", fn)  # a functools.partial
    if inspect.iscoroutinefunction(target):
        return True
    # An object with an async __call__ (a class instance used as a step body).
    return not inspect.isroutine(target) and inspect.iscoroutinefunction(type(target).__call__)


def positional_count(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes: ``sys.maxsize`` (any number) with ``*args``, and 1
    when its signature cannot be read (most builtins)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return sys.maxsize
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def parameters(fn: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def bind(
    fn: Callable[..., Any], by_name: list[str], *, positional: int
) -> Callable[[StepContext, Sequence[Any]], Any]:
    """How to call ``fn`` with the step context and its dependencies' results: dependencies given by
    position (``depends=``) first, then those its parameters name; the context to a parameter named
    ``ctx``, or, with no dependencies, to its one required positional parameter."""
    params = parameters(fn)
    ctx_by_name = "ctx" in params
    ctx_positional = not ctx_by_name and not by_name and not positional and wants_context(fn)

    def call(ctx: StepContext, values: Sequence[Any]) -> Any:
        args = list(values[:positional])
        kwargs = dict(zip(by_name, values[positional:], strict=True))
        if ctx_by_name:
            kwargs["ctx"] = ctx
        elif ctx_positional:
            args.insert(0, ctx)
        return fn(*args, **kwargs)

    return call
