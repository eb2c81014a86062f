"""Where step bodies run when they run concurrently, or when they are ``async``.

Plain functions run on a pool of threads; coroutines run on one event loop of their own, in a daemon
thread, so that a body's I/O (an HTTP call, ``asyncio.sleep``) never blocks the workflow's loop and
many bodies wait at once. Both live for the process: a warm Lambda container reuses them.

A body cannot be stopped from outside its thread. When a plain function's attempt runs past its timeout,
the attempt fails at once and its thread is left to finish; whatever it returns then is dropped. A
coroutine's attempt is cancelled at its timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Callable
from typing import Any

from framework.engine.replay import step_body
from framework.errors import StepTimeoutError

MAX_THREADS = 64  # plain-function bodies running at once in one invocation, at most
Done = Callable[[Any, BaseException | None], None]


class _Runners:
    """The process's thread pool and body loop, made on first use."""

    lock = threading.Lock()
    pool: concurrent.futures.ThreadPoolExecutor | None = None
    loop: asyncio.AbstractEventLoop | None = None


def timeout_error(seconds: float) -> StepTimeoutError:
    return StepTimeoutError(f"attempt ran past its timeout of {seconds:g} s")


def _threads() -> concurrent.futures.ThreadPoolExecutor:
    with _Runners.lock:
        if _Runners.pool is None:
            _Runners.pool = concurrent.futures.ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="step-body")
        return _Runners.pool


def body_loop() -> asyncio.AbstractEventLoop:
    """The event loop that runs coroutine bodies, started on first use."""
    with _Runners.lock:
        if _Runners.loop is None or _Runners.loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="step-body-loop", daemon=True).start()
            _Runners.loop = loop
        return _Runners.loop


async def _bounded(awaitable: Any, seconds: float) -> Any:
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise timeout_error(seconds) from None


def await_on_body_loop(awaitable: Any, seconds: float) -> Any:
    """Run a coroutine a body returned on the body loop, from a thread that is not that loop's."""
    future = asyncio.run_coroutine_threadsafe(_bounded(awaitable, seconds), body_loop())
    try:
        return future.result(seconds + 1.0)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise timeout_error(seconds) from None


def start(
    body: Callable[[], Any],
    seconds: float,
    done: Done,
    *,
    is_async: bool,
    owner: object,
    started: Callable[[], None] = lambda: None,
) -> Callable[[], None]:
    """Start ``body`` in the background; ``done(value, error)`` is called from another thread when it
    ends, ``started()`` when it begins (a plain function may wait for a free thread first). ``is_async``:
    calling it returns a coroutine, run on the body loop. Return a function that cancels it (a body
    not begun yet, or a coroutine; a running thread cannot be stopped). ``owner``: the replay the body
    is of."""
    if is_async:
        started()
        return _start_coroutine(body, seconds, done, owner)
    future = _threads().submit(_run_in_thread, body, seconds, owner, started)

    def finished(f: concurrent.futures.Future[Any]) -> None:
        if f.cancelled():  # by ``cancel`` below: nobody waits for it any more
            done(None, asyncio.CancelledError())
            return
        error = f.exception()
        done(None if error is not None else f.result(), _as_failure(error))

    future.add_done_callback(finished)

    def cancel() -> None:
        # A body still queued behind a full pool never starts: its attempt is over (timed out, or
        # the run ended), and running it now would run the step once more than recorded.
        future.cancel()

    return cancel


def _as_failure(error: BaseException | None) -> BaseException | None:
    """A body's error as the workflow's driver receives it. A CancelledError a body raised itself
    (an HTTP client's cancelled request, say) is a failed attempt like any other: raised into the
    workflow's task as it is, it would cancel that task, and end the invocation."""
    if isinstance(error, asyncio.CancelledError):
        return concurrent.futures.CancelledError("the step body raised CancelledError")
    return error


def _run_in_thread(
    body: Callable[[], Any], seconds: float, owner: object, started: Callable[[], None]
) -> Any:
    started()
    with step_body(owner):
        result = body()
        if inspect.isawaitable(result):  # a plain function that returned a coroutine (a lambda, say)
            return await_on_body_loop(result, seconds)
        return result


def _start_coroutine(
    body: Callable[[], Any], seconds: float, done: Done, owner: object
) -> Callable[[], None]:
    async def bounded() -> Any:
        with step_body(owner):  # this task's context only: other bodies share the loop
            return await _bounded(body(), seconds)

    future = asyncio.run_coroutine_threadsafe(bounded(), body_loop())

    def finished(f: concurrent.futures.Future[Any]) -> None:
        if f.cancelled():  # by ``cancel`` below, or by the body raising CancelledError itself
            done(None, _as_failure(asyncio.CancelledError()))
            return
        error = f.exception()
        done(None if error is not None else f.result(), _as_failure(error))

    future.add_done_callback(finished)

    def cancel() -> None:
        future.cancel()

    return cancel
