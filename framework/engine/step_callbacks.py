"""The callback calls of the ``step`` object (``framework.engine.step``): ``create_callback`` and
``wait_for_callback``, over ``framework.engine.ops.callback``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from framework.api.calls import StepContext, check_name
from framework.core.config import step_config
from framework.core.durations import Duration
from framework.core.records import EntryKind
from framework.engine.ops import Operation
from framework.engine.ops import callback as callback_op
from framework.engine.ops import step as step_op
from framework.engine.step_functions import callback_times, is_coroutine_fn, positional_count
from framework.errors import InvalidConfigError

if TYPE_CHECKING:
    from framework.core.config import StepConfig
    from framework.engine.replay import Replay
    from framework.engine.scheduler import Scheduler


class CallbackCalls:
    """Mixed into ``Step``, which provides the replay, the scheduler and the driver."""

    _r: Replay
    _scheduler: Scheduler | None

    def _perform(self, operation: Operation) -> Any:
        raise NotImplementedError  # Step's

    # -- callbacks (framework.engine.ops.callback) -----------------------------------------------------
    def create_callback(
        self, name: str, timeout: Duration = "24 hours", heartbeat_timeout: Duration | None = None
    ) -> Any:
        """Create a callback: a :class:`~framework.engine.ops.callback.Callback` whose ``id`` an outside
        system answers with ``WorkflowClient.send_callback_success`` (or ``_failure``, or
        ``_heartbeat``), and whose ``result()`` waits for that answer, at most ``timeout`` from now and,
        with ``heartbeat_timeout``, at most that long after the last heartbeat (or the creation)."""
        seconds, heartbeat = callback_times(name, timeout, heartbeat_timeout)
        claim = self._r.claim(EntryKind.CALLBACK, name)
        return self._perform(callback_op.create(self._r, claim, name, seconds, heartbeat, self._perform))

    def wait_for_callback(
        self,
        name: str,
        submit: Callable[..., Any],
        timeout: Duration = "24 hours",
        heartbeat_timeout: Duration | None = None,
        *,
        config: StepConfig | dict[str, Any] | None = None,
    ) -> Any:
        """Create a callback, run ``submit(callback_id, ctx)`` (or ``submit(callback_id)``) as the durable
        step ``"<name> submit"`` (with ``config``), then wait for the callback's result, as
        ``create_callback(...).result()`` does. Both identities are taken at the call."""
        seconds, heartbeat = callback_times(name, timeout, heartbeat_timeout)
        if not callable(submit):
            raise InvalidConfigError(
                f"callback {name!r} needs a callable submit, got {type(submit).__name__}"
            )
        submit_name = check_name(f"{name} submit")
        cfg = step_config(config, step=submit_name)
        with_ctx = positional_count(submit) >= 2  # submit(callback_id) takes no context
        is_async = is_coroutine_fn(submit)
        created = callback_op.create(
            self._r, self._r.claim(EntryKind.CALLBACK, name), name, seconds, heartbeat, self._perform
        )
        submit_claim = self._r.claim(EntryKind.STEP, submit_name)

        def submitting(cb: callback_op.Callback) -> Operation:
            def body(ctx: StepContext) -> Any:
                return submit(cb.id, ctx) if with_ctx else submit(cb.id)

            return step_op.run(self._r, submit_claim, submit_name, body, cfg, is_async=is_async)

        if self._scheduler is None:
            cb = self._perform(created)
            self._perform(submitting(cb))
            return cb.result()
        scheduler = self._scheduler

        async def wait() -> Any:
            cb = await scheduler.perform(created)
            await scheduler.perform(submitting(cb))
            return await cb.result()

        return wait()
