"""``step.create_callback`` and ``step.wait_for_callback``: wait for an outside system to send a result.

Creating a callback writes its journal entry (WAITING, with a 128-bit token drawn then and its deadline)
before its id exists anywhere, so a replay finds the same entry and hands out the same id
(``framework.core.callbacks``). ``cb.result()`` waits on that entry, as a wait for an event does: the
outcome a sender stores (``WorkflowClient.send_callback_*``) is an event of its own type and key, which
wakes the instance; the first one seen is recorded in the entry (complete or failed) and returned, or
raised, identically on replay. A heartbeat moves the heartbeat deadline to its send time plus
``heartbeat_timeout`` and wakes nothing: the instance wakes at the deadline it knows of, reads the
heartbeat, and waits on. Whichever deadline passes first (the timeout, counted from creation, or the
heartbeat's) is recorded as TIMED_OUT: WorkflowTimeoutError, again on replay, unless the sender's outcome
was stored before the timeout's write (see CLOSING): the sender was told it was taken, so it counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from framework.core.callbacks import CALLBACK_EVENT, HEARTBEAT_EVENT, CallbackId, new_token
from framework.core.logs import logger
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import EntryKind, EntryStatus, ErrorInfo, JournalEntry
from framework.engine.ops import Operation, Taken, until_taken
from framework.errors import CallbackFailedError, WorkflowTimeoutError

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay

# A timeout is recorded in two steps. Its first write makes the entry refuse sends (they need it
# waiting); an outcome stored before that write was accepted, so it must count: the wait then reads the
# outcomes once more (strongly consistent) and completes with it, or drops this mark and times out. A
# crash between the two finds the mark on replay, before the wait's caller saw either.
CLOSING = "closing"


class Callback:
    """A callback created by ``step.create_callback``. Hand ``id`` to the system that will answer (it is
    a secret: whoever holds it can complete the callback); ``result()`` waits for its answer."""

    def __init__(self, r: Replay, entry: JournalEntry, perform: Callable[[Operation], Any]) -> None:
        self._r = r
        self._op = entry.op_id
        self._perform = perform
        self.name = entry.name
        self.id = str(CallbackId(r.inv.instance_id, r.inv.run_number, entry.seq, entry.extra["token"]))

    def result(self) -> Any:
        """The result the sender sent (JSON). Raise CallbackFailedError if it sent a failure, and
        WorkflowTimeoutError once the timeout or the heartbeat timeout passed first. In an async
        workflow, an awaitable of it."""
        return self._perform(wait(self._r, self._op))

    def __repr__(self) -> str:
        return f"Callback(name={self.name!r})"  # not the id: it is a secret


def create(
    r: Replay,
    claim: Claim,
    name: str,
    timeout: float,
    heartbeat: float | None,
    perform: Callable[[Operation], Any],
) -> Operation:
    """Record the callback ``name`` on first run and return its handle; a replay returns the handle of
    the recorded entry (the same id)."""
    if claim.entry is not None:
        return Callback(r, claim.entry, perform)
    if False:  # pragma: no cover - an operation is a generator, even one that never waits
        yield
    now = r.inv.now()
    extra: dict[str, Any] = {"token": new_token(), "timeout": timeout}
    if heartbeat is not None:
        extra["heartbeat_timeout"] = heartbeat
    entry = JournalEntry(
        r.journal.new_seq(),
        EntryKind.CALLBACK,
        name,
        EntryStatus.WAITING,
        now,
        wake_at=r.inv.wait_until(now, now + timeout),
        extra=extra,
        op=claim.op,
    )
    written = r.write(None, entry)  # written now, not deferred: no id may exist without its entry
    logger.info("callback created", extra={"step": name})
    return Callback(r, written, perform)


def wait(r: Replay, op: str) -> Operation:
    """Wait for the outcome of the callback at ``op``: its result, or raise what it recorded."""
    r.boundary()
    entry = r.journal.get(op)
    assert entry is not None and entry.kind is EntryKind.CALLBACK

    def timed_out(entry: JournalEntry, at: float) -> Any:
        # The first write of a timeout: from now on the entry refuses sends. What came before it
        # counts (``_take`` reads the outcomes again); without one, the timeout is raised.
        why = "heartbeat" if entry.wake_at is not None and at < entry.wake_at else "timeout"
        extra = entry.extra | {"timed_out": why, CLOSING: True}
        entry = r.write(entry, replace(entry, status=EntryStatus.TIMED_OUT, ended_at=at, extra=extra))
        taken = _take(r, entry)
        assert taken is not None  # a closing entry always ends
        return taken.value

    result = yield from until_taken(
        r,
        entry,
        CALLBACK_EVENT,
        f"callback {entry.name!r}",
        take=lambda entry: _take(r, entry),
        deadline=lambda entry: _deadline(r, entry),
        timed_out=timed_out,
        shown=lambda at: WaitInfo(WaitKind.CALLBACK, entry.name, at),
    )
    return result


def _take(r: Replay, entry: JournalEntry) -> Taken | None:
    """The callback's outcome: the one recorded (raised if it is a failure or a timeout), or the one a
    sender stored, recorded now; None while there is none. A closing timeout reads the outcomes again:
    one stored before the timeout's first write counts; without one, the timeout stands."""
    closing = entry.status is EntryStatus.TIMED_OUT and entry.extra.get(CLOSING)
    if entry.status is not EntryStatus.WAITING and not closing:
        return Taken(_recorded(entry))
    cid = CallbackId(r.inv.instance_id, r.inv.run_number, entry.seq, entry.extra["token"])
    outcomes = r.inv.events(CALLBACK_EVENT, fresh=bool(closing))
    sent = next((e for e in outcomes if e.key == cid.outcome_key), None)
    if sent is not None:
        if closing:  # the timeout is undone: what it added goes
            extra = {k: v for k, v in entry.extra.items() if k not in (CLOSING, "timed_out")}
            entry = replace(entry, status=EntryStatus.WAITING, ended_at=None, extra=extra)
        entry = r.write(entry, _completed(entry, json.loads(sent.payload), r.inv.now()))
        r.inv.taken.append(sent.key)
        logger.info("callback completed", extra={"step": entry.name, "status": entry.status.value})
        return Taken(_recorded(entry))
    if closing:  # no outcome came before the timeout: it stands. Written with the next write.
        extra = {k: v for k, v in entry.extra.items() if k != CLOSING}
        entry = r.write(entry, replace(entry, extra=extra), defer=True)
        return Taken(_recorded(entry))
    return None


def _deadline(r: Replay, entry: JournalEntry) -> float:
    """The earlier of the timeout and the heartbeat deadline (the last heartbeat, or the creation, plus
    ``heartbeat_timeout``)."""
    assert entry.wake_at is not None
    heartbeat: float | None = entry.extra.get("heartbeat_timeout")
    if heartbeat is None:
        return entry.wake_at
    cid = CallbackId(r.inv.instance_id, r.inv.run_number, entry.seq, entry.extra["token"])
    beats = [e.sent_at for e in r.inv.events(HEARTBEAT_EVENT) if e.key == cid.heartbeat_key]
    last = max([entry.started_at, *beats])
    return min(r.inv.wait_until(last, last + heartbeat), entry.wake_at)


def _completed(entry: JournalEntry, outcome: dict[str, Any], now: float) -> JournalEntry:
    """The entry with the outcome a sender stored (``framework.manage.callbacks``)."""
    if "error" in outcome:
        error = ErrorInfo(str(outcome["error"]), str(outcome.get("message", "")))
        return replace(entry, status=EntryStatus.FAILED, ended_at=now, error=error)
    extra = entry.extra | {"payload": json.dumps(outcome["result"], ensure_ascii=False, allow_nan=False)}
    return replace(entry, status=EntryStatus.COMPLETE, ended_at=now, extra=extra)


def _recorded(entry: JournalEntry) -> Any:
    """What a recorded callback gives: its result, or its failure or timeout raised."""
    if entry.status is EntryStatus.COMPLETE:
        return json.loads(entry.extra["payload"])
    if entry.status is EntryStatus.FAILED:
        assert entry.error is not None
        raise CallbackFailedError(entry.name, entry.error.name, entry.error.message)
    which = entry.extra.get("timed_out")
    if which == "heartbeat":
        raise WorkflowTimeoutError(
            f"callback {entry.name!r} timed out: no heartbeat for {entry.extra['heartbeat_timeout']:g} s"
        )
    raise WorkflowTimeoutError(f"callback {entry.name!r} timed out after {entry.extra['timeout']:g} s")
