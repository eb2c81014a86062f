"""``step.child``, ``step.parallel`` and ``step.map``: workflow code run in scopes of its own, in-process.

A **child scope** runs a function of workflow code (it may call ``step.do``, sleep, wait, nest more
scopes) under an op id of its own: its calls are numbered inside it (``"4.0"``, ``"4.1"``, ...), so they
keep their identities however the code around it changes order. When the function returns, its result
is recorded in the child's entry; a replay then returns that result without running the function, and
the calls inside it are never reached again. A function that raises records its error, raised again
as the same error on replay (:func:`framework.errors.rebuilt_error`).

A **batch** (``map``, ``parallel``) is a scope whose items are child scopes numbered by their index
(``"4.0"`` is item 0), at most ``max_concurrency`` at once in an async workflow, one after another in a
sync one. Each item's outcome is recorded as it ends; a :class:`~framework.api.batch.CompletionPolicy`
ends the batch early, and the batch's entry records its :class:`~framework.api.batch.BatchResult`. After
that a replay reads that one entry, whatever the number of items.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from framework.api.batch import (
    BatchError,
    BatchItem,
    BatchItemStatus,
    BatchResult,
    CompletionPolicy,
    CompletionReason,
)
from framework.core import serde
from framework.core.records import EntryKind, EntryStatus, ErrorInfo, JournalEntry
from framework.engine import payloads
from framework.engine.identity import CURRENT, Scope
from framework.engine.ops.batches import ERROR_CHARS, load_batch, outcome, record_batch, stored_item
from framework.engine.step_functions import is_coroutine_fn, positional_count
from framework.errors import InvalidConfigError, rebuilt_error

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay
    from framework.engine.scheduler import Scheduler

Code = Callable[[], Any]  # runs an item's or child's workflow code: its value, or (async) an awaitable


class ChildScope:
    """One child scope: check its recorded outcome, run its code, record what it ended with. Once it
    succeeded (or its recorded success was read), ``text`` is its result's JSON text as stored: a batch
    keeps that text, and encodes no result again."""

    def __init__(self, r: Replay, claim: Claim, name: str) -> None:
        self.r = r
        self.claim = claim
        self.name = name
        self.text: str | None = None

    @property
    def recorded(self) -> bool:
        entry = self.claim.entry
        return entry is not None and entry.status in (EntryStatus.COMPLETE, EntryStatus.FAILED)

    def outcome(self) -> Any:
        """The recorded outcome: its value, or its error raised."""
        entry = self.claim.entry
        assert entry is not None
        if entry.status is EntryStatus.FAILED:
            raise rebuilt_error(self.name, entry.extra.get("failure", {}))
        self.text, value = self.r.inv.engine_call(
            payloads.load_text, self.r.inv.env, entry.result, entry.result_ref
        )
        return value

    def succeeded(self, value: Any) -> Any:
        """Record the code's return value; return it as replay will (decoded from its JSON)."""
        what = f"result of {self.name!r}"
        self.text, value = serde.roundtrip(value, what=what)
        self._write(EntryStatus.COMPLETE, text=self.text)
        return value

    def failed(self, error: Exception) -> Exception:
        """Record the code's error, unless it stops the whole run; return the error to raise."""
        if self.r.problem is not None or self.r.inv.failure is not None:
            return error  # a suspension, an engine failure, a changed workflow: nothing to record
        fields = BatchError.of(error, ErrorInfo.of(error, limit=ERROR_CHARS).message).to_dict()
        self._write(EntryStatus.FAILED, failure=fields)
        return rebuilt_error(self.name, fields)

    def _write(
        self, status: EntryStatus, *, text: str | None = None, failure: dict[str, Any] | None = None
    ) -> None:
        r, claim = self.r, self.claim
        seq = r.journal.new_seq()
        inline = ref = None
        if text is not None:
            inline, ref = r.inv.engine_call(
                payloads.store,
                r.inv.env,
                text,
                r.inv.blob_key("results", seq, 1),
                what=f"result of {self.name!r}",
            )
        now = r.inv.now()
        error = ErrorInfo(failure["type"], failure["message"]) if failure else None
        entry = JournalEntry(
            seq,
            EntryKind.CHILD,
            self.name,
            status,
            now,
            ended_at=now,
            result=inline,
            result_ref=ref,
            error=error,
            extra={"failure": failure} if failure else {},
            op=claim.op,
        )
        r.write(None, entry)


def child_sync(child: ChildScope, code: Code) -> Any:
    """Run a child scope on the workflow's thread (a sync workflow)."""
    if child.recorded:
        return child.outcome()
    token = CURRENT.set(Scope(child.claim.op))
    try:
        value = code()
    except Exception as exc:
        raise child.failed(exc) from None
    finally:
        CURRENT.reset(token)
    return child.succeeded(value)


async def child_async(scheduler: Scheduler, child: ChildScope, code: Code) -> Any:
    """Run a child scope as a task of the workflow loop (an async workflow)."""
    if child.recorded:
        return child.outcome()

    async def run() -> Any:
        value = code()
        return await value if inspect.isawaitable(value) else value

    try:
        value = await scheduler.loop.start_in(run(), Scope(child.claim.op))
    except Exception as exc:
        raise child.failed(exc) from None
    return child.succeeded(value)


# -- batches ------------------------------------------------------------------------------------------
class Batch:
    """One map or parallel: its items' code, its policy, and its entry."""

    def __init__(
        self,
        r: Replay,
        kind: EntryKind,
        name: str,
        codes: Sequence[Code],
        policy: CompletionPolicy,
        max_concurrency: int | None,
        *,
        sync: bool,
    ) -> None:
        self.r = r
        self.kind = kind
        self.name = name
        self.codes = codes
        self.policy = policy
        self.limit = max_concurrency or max(len(codes), 1)
        self.claim = r.claim(kind, name)  # the batch's identity, taken where it is called
        # A map over a workflow recorded it; over a function, none.
        r.same_as_recorded(self.claim.entry, f"{kind.value} {name!r}", "workflow", None)
        if self.recorded() is None:
            self._check_history(1 if sync else self.limit)
        self.items: dict[int, BatchItem] = {}
        self.texts: dict[int, str | None] = {}  # each succeeded item's result as its child stored it

    def _check_history(self, at_once: int) -> None:
        """Raise InvalidConfigError, before any item starts, if the run's history cannot hold the calls
        the batch makes at least: its own (made already), and one per item it starts before it can
        succeed (each item's child scope; what the item's code calls comes on top). Those items are
        all of them, or ``min_successful`` of them, but never fewer than start together (one at a time
        in a sync workflow, up to ``max_concurrency`` in an async one); none when the policy ends the
        batch at once (``min_successful=0``). See docs/execution-model.md, "Limits and costs"."""
        total = len(self.codes)
        if self.policy.reason(0, 0) is not None:
            return
        must = total if self.policy.min_successful is None else self.policy.min_successful
        items = max(must, min(at_once, total))
        made, limit = self.r.journal.calls, self.r.inv.env.settings.max_history
        if made + items > limit:
            raise InvalidConfigError(
                f"{self.kind.value} {self.name!r} needs at least {made + items} durable calls (the "
                f"{made} the run has made with the {self.kind.value}'s own, and one per item it must "
                f"start, {items}), more than the {limit} a run may make (WORKFLOWS_MAX_HISTORY): map "
                "over a workflow, or split the items across instances"
            )

    def item_scope(self, index: int) -> ChildScope:
        name = f"{self.name}[{index}]"
        return ChildScope(self.r, self.r.claim(EntryKind.CHILD, name, op=f"{self.claim.op}.{index}"), name)

    def ended(
        self, index: int, child: ChildScope, value: Any, error: Exception | None
    ) -> CompletionReason | None:
        """Note item ``index``'s outcome; return why the batch ends now, if it does."""
        if error is None:
            self.items[index] = BatchItem(index, BatchItemStatus.SUCCEEDED, value)
            self.texts[index] = child.text
        else:
            message = ErrorInfo.of(error, limit=ERROR_CHARS).message
            self.items[index] = BatchItem(index, BatchItemStatus.FAILED, None, BatchError.of(error, message))
        failed = sum(1 for i in self.items.values() if i.status is BatchItemStatus.FAILED)
        return self.policy.reason(len(self.items) - failed, failed)

    def check_run(self) -> None:
        """After an item raised: raise what stops the whole run (a changed workflow, an engine
        failure), which is no item's failure."""
        if self.r.problem is not None:
            raise self.r.problem
        if self.r.inv.failure is not None:
            raise self.r.inv.failure

    # -- the batch's entry
    def recorded(self) -> BatchResult | None:
        entry = self.claim.entry
        if entry is None or entry.status not in (EntryStatus.COMPLETE, EntryStatus.FAILED):
            return None
        return load_batch(self.r, entry, self.name)

    def finish(self, reason: CompletionReason, running: Sequence[int] = ()) -> BatchResult:
        """Record the batch's result (items still running as STARTED); return it, or raise
        BatchFailedError if it failed."""
        for index in running:
            self.items[index] = BatchItem(index, BatchItemStatus.STARTED)
        result = BatchResult([self.items[i] for i in sorted(self.items)], reason, self.name)
        stored = [stored_item(i, self.texts.get(i.index)) for i in result.all]
        record_batch(self.r, None, self.kind, self.name, self.claim.op, stored, reason, len(self.codes))
        return outcome(result, self.kind)


def run_sync(batch: Batch) -> BatchResult:
    """Run the batch's items one after another (a sync workflow)."""
    recorded = batch.recorded()
    if recorded is not None:
        return outcome(recorded, batch.kind)
    reason = batch.policy.reason(0, 0)
    for index, code in enumerate(batch.codes):
        if reason is not None:
            break
        child = batch.item_scope(index)
        try:
            value, error = child_sync(child, code), None
        except Exception as exc:
            batch.check_run()
            value, error = None, exc
        reason = batch.ended(index, child, value, error)
    return batch.finish(reason or CompletionReason.ALL_COMPLETED)


async def run_async(scheduler: Scheduler, batch: Batch) -> BatchResult:
    """Run the batch's items as tasks, at most ``batch.limit`` at once (an async workflow)."""
    recorded = batch.recorded()
    if recorded is not None:
        return outcome(recorded, batch.kind)
    reason = batch.policy.reason(0, 0)
    running: dict[asyncio.Task[Any], int] = {}
    scopes: dict[int, ChildScope] = {}
    following = iter(enumerate(batch.codes))
    try:
        while reason is None:
            while len(running) < batch.limit:
                nxt = next(following, None)
                if nxt is None:
                    break
                index, code = nxt
                child = scopes[index] = batch.item_scope(index)
                # A task that takes no position in the caller's scope: how many items start depends on
                # when the policy ends the batch, and the calls after the batch must not.
                task = scheduler.loop.start_in(child_async(scheduler, child, code), Scope(child.claim.op))
                running[task] = index
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: running[t]):  # by index: the same on every replay
                index = running.pop(task)
                error = task.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error  # a suspension, a stop, an engine failure
                if error is not None:
                    batch.check_run()
                ended = batch.ended(index, scopes[index], None if error else task.result(), error)
                reason = reason or ended
    except asyncio.CancelledError:  # the run is closing
        for task in running:
            task.cancel()
        raise
    # (A suspension or a stop raised above leaves the items running: the driver lets their bodies end
    # and be recorded, as for any branch, before it cancels what is left.) A policy ended the batch:
    # the items still running are cancelled.
    for task in running:
        task.cancel()
    if running:
        await asyncio.gather(*running, return_exceptions=True)
    return batch.finish(reason or CompletionReason.ALL_COMPLETED, sorted(running.values()))


# -- arguments --------------------------------------------------------------------------------------
def branch_code(step: Any, fn: Callable[..., Any], *args: Any) -> Code:
    """How to call ``fn`` of a branch or item: with ``step`` and then ``args``, as many as its
    positional parameters take."""
    take = positional_count(fn)
    given = (step, *args)
    return lambda: fn(*given[: min(take, len(given))])


def check_code(what: str, fn: Any, *, sync: bool) -> None:
    if not callable(fn):
        raise InvalidConfigError(f"{what} needs a callable, got {type(fn).__name__}")
    if sync and is_coroutine_fn(fn):
        raise InvalidConfigError(
            f"{what} is an async function, in a sync workflow: make the workflow async, or the function plain"
        )
