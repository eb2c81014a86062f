"""``step.wait_for_condition``: run a check, then wait, until the wait strategy says the state is done.

The run keeps one journal entry for the whole wait, rewritten after each check with the check's new
state, the number of checks made and the time of the next one. Replay therefore costs one entry however
long the polling went on. Each check runs at least once per recorded state: a crash between a check's
end and its write runs that check again, with the same state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from framework.api.calls import StepContext
from framework.core import serde
from framework.core.config import DEFAULTS, config_view
from framework.core.durations import parse_duration
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import EntryKind, EntryStatus, ErrorInfo, JournalEntry
from framework.engine import payloads
from framework.engine.ops import Operation, RunBody, Wait
from framework.errors import StepFailedError, Suspend, rebuilt_error

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay

Check = Callable[[Any, StepContext], Any]  # (state, ctx) -> the new state
Strategy = Callable[[Any, int], Any]  # (state, checks so far) -> a duration to wait, or None: done


def run(
    r: Replay,
    claim: Claim,
    name: str,
    check: Check,
    strategy: Strategy,
    initial_state: Any,
    timeout: float,
    *,
    is_async: bool = False,
) -> Operation:
    """Check and wait until ``strategy`` returns None; return the last state."""
    op, entry = claim.op, claim.entry
    # -- check: a recorded outcome
    if entry is not None and entry.status is EntryStatus.COMPLETE:
        return serde.decode(entry.extra["state"])
    if entry is not None and entry.status is EntryStatus.FAILED:
        raise rebuilt_error(name, entry.extra.get("failure", {}))
    # -- execute
    if entry is None:
        text = serde.encode(initial_state, what=f"initial state of condition {name!r}")
        checks = 0
    else:
        text, checks = entry.extra["state"], entry.extra["checks"]
        assert entry.wake_at is not None
        shown = WaitInfo(WaitKind.CONDITION, name, entry.wake_at)
        yield Wait(entry.wake_at, f"condition {name!r}", shown=shown)
    seq = entry.seq if entry is not None else r.journal.new_seq()
    started = entry.started_at if entry is not None else r.inv.now()
    new = functools.partial(JournalEntry, seq, EntryKind.CONDITION, name, started_at=started, op=op)
    while True:
        if r.inv.time_left() < r.inv.margin:
            r.stop(Suspend(r.inv.now(), f"too little invocation time left for condition {name!r}"))
        context = StepContext(
            attempt=checks + 1,
            name=name,
            count=claim.count,
            instance_id=r.inv.instance_id,
            idempotency_key=f"{r.inv.instance_id}:{r.inv.run_key}:{op}:{checks + 1}",
            config=config_view(DEFAULTS),
        )
        budget = max(min(timeout, r.inv.time_left() - r.inv.margin / 2), 0.001)
        try:
            state = yield RunBody(functools.partial(check, serde.decode(text), context), budget, is_async)
            checks += 1
            what = f"state of condition {name!r}"
            text, state = serde.roundtrip(state, what=what)
            payloads.check(
                r.inv.env, text, what=what, inline_room=r.inv.env.settings.inline_result_bytes // 2
            )
            delay = strategy(state, checks)
        except Exception as exc:
            raise _failed(r, new, entry, exc, checks, name) from None
        if delay is None:
            r.write(
                entry,
                new(EntryStatus.COMPLETE, ended_at=r.inv.now(), extra={"state": text, "checks": checks}),
            )
            return state
        now = r.inv.now()
        wake_at = r.inv.wait_until(now, now + parse_duration(delay, what=f"wait of condition {name!r}"))
        waiting = new(EntryStatus.WAITING, wake_at=wake_at, extra={"state": text, "checks": checks})
        entry = r.write(entry, waiting)
        yield Wait(wake_at, f"condition {name!r}", shown=WaitInfo(WaitKind.CONDITION, name, wake_at))


def _failed(
    r: Replay,
    new: functools.partial[JournalEntry],
    entry: JournalEntry | None,
    error: Exception,
    checks: int,
    name: str,
) -> Exception:
    """Record that the condition failed (its check raised, or its strategy gave up); return the error
    to raise, the same as replay raises."""
    fields: dict[str, Any] = {"type": type(error).__name__, "message": ErrorInfo.of(error, limit=512).message}
    if isinstance(error, StepFailedError):
        fields = {"type": error.error_type, "message": error.error_message}
    if fields["type"] not in _KEPT:
        fields |= {"step": name, "attempts": max(checks, 1)}
    failed = new(
        EntryStatus.FAILED,
        ended_at=r.inv.now(),
        error=ErrorInfo(fields["type"], fields["message"]),
        extra={"failure": fields, "checks": checks},
    )
    r.write(entry, failed)
    return rebuilt_error(name, fields)


# Errors a strategy raises on purpose, raised as themselves (see framework.errors.rebuilt_error).
_KEPT = frozenset({"WorkflowTimeoutError", "NonRetryableError", "InvalidConfigError"})
