"""``step.map`` over a workflow: each item a child instance, at most ``max_concurrency`` at once, and
one entry for the whole batch.

The map's entry holds the state of every item in one string (``WAITING`` ... ``STOPPED`` below). Each
invocation of the parent *folds*: it takes the reports of the children that ended since the last fold
(``framework.engine.children``), writes their outcomes as a *part* (an event of the parent's own, type
``PARTS``), starts children into the free places, and writes the entry's next revision. The reports it
took are deleted once it suspends, so a fold reads only what is new: the parent's work grows with the
items that ended, never with the items that ended before. When the completion policy ends the batch,
the children still running are terminated, the parts are read once, and the entry records the
BatchResult: after that, a replay reads that one entry (and its blob), whatever the number of items.

Children are created before the entry that counts them is written: a crash in between finds them on
replay (their ids are fixed by the parent's incarnation, run and the item's op id) and adopts them.
Parts are keyed by the entry revision and the writer's lease, so two invocations that overlapped never
overwrite each other's; a child's outcome is the same in every part that holds it, and the entry's
state decides which items count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from framework.api.batch import BatchError, BatchItemStatus, CompletionPolicy
from framework.api.limits import limit_key
from framework.core import serde
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import (
    Control,
    EntryKind,
    EntryStatus,
    ErrorInfo,
    EventRecord,
    InstanceRecord,
    JournalEntry,
    ParentLink,
    Status,
    new_incarnation,
)
from framework.engine import children, payloads
from framework.engine.ops import Operation, Wait, batches
from framework.errors import InstanceAlreadyExistsError, InvalidConfigError, InvalidStateError, WorkflowError

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay

PARTS = "$batch"  # the parent's own events that hold folded item outcomes; users cannot send "$" types
MAX_ITEMS = 10_000  # items of one map over a workflow: the entry keeps one character per item
MAX_RESULT_BYTES = 32 * 1024 * 1024  # the batch's stored result, all items' results together
PART_BYTES = 200_000  # one part event, far below DynamoDB's 400 KB item
ITEM_INLINE_BYTES = 64 * 1024  # a larger item result goes to the blob store, the part keeps its key
DEFAULT_CONCURRENCY = 100  # children at once when the map sets no max_concurrency
RECHECK_SECONDS = 86_400.0  # a waiting map looks again this often even if no report woke it
# An item's state, one character each in the entry.
WAITING, RUNNING, SUCCEEDED, FAILED, STOPPED = ".", "r", "s", "f", "t"
ENDED = frozenset({SUCCEEDED, FAILED})


def progress(state: str) -> dict[str, int]:
    """How many of a map's items wait, run, succeeded, failed, or were stopped when the batch ended."""
    names = (("waiting", WAITING), ("running", RUNNING), ("succeeded", SUCCEEDED), ("failed", FAILED))
    return {"items": len(state)} | {k: state.count(c) for k, c in (*names, ("stopped", STOPPED))}


def check_items(name: str, count: int) -> None:
    if count > MAX_ITEMS:
        raise InvalidConfigError(
            f"map {name!r} over a workflow has {count} items; the limit is {MAX_ITEMS}: split the items "
            "into groups and map over a workflow that maps each group"
        )


def run(
    r: Replay,
    claim: Claim,
    name: str,
    workflow: str,
    items: Sequence[Any],
    policy: CompletionPolicy,
    limit: int,
) -> Operation:
    """Run ``workflow`` once per item (the item is its params) as child instances, at most ``limit`` at
    once; return the BatchResult of their outputs, or raise BatchFailedError as the policy says."""
    entry = claim.entry
    fan = FanOut(r, claim.op, name, workflow, items, policy, limit)
    # -- check
    r.same_as_recorded(entry, f"map {name!r}", "workflow", workflow)
    r.same_as_recorded(entry, f"map {name!r}", "digest", fan.digest)
    if entry is not None and entry.status in (EntryStatus.COMPLETE, EntryStatus.FAILED):
        return batches.outcome(batches.load_batch(r, entry, name), EntryKind.MAP)
    # -- execute
    while True:
        entry, ended = fan.fold(entry)
        if ended is not None:
            return batches.outcome(batches.load_batch(r, ended, name), EntryKind.MAP)
        seen = frozenset(e.key for e in r.inv.events(children.REPORTS))
        reason = f"map {name!r}: {entry.extra['state'].count(RUNNING)} children running"
        shown = WaitInfo(WaitKind.MAP, name, None)  # the recheck is no deadline
        at = r.inv.now() + RECHECK_SECONDS
        yield Wait(at, reason, event_type=children.REPORTS, seen=seen, shown=shown)
        entry = r.journal.get(entry.op_id) or entry


class FanOut:
    """One map over a workflow, as this replay sees it."""

    def __init__(
        self,
        r: Replay,
        op: str,
        name: str,
        workflow: str,
        items: Sequence[Any],
        policy: CompletionPolicy,
        limit: int,
    ) -> None:
        self.r, self.op, self.name, self.policy, self.limit = r, op, name, policy, limit
        self.wf = r.inv.env.registry.get(workflow)
        self.workflow = workflow
        # Every item checked against the workflow's params first: a bad one starts nothing.
        self.params = [self.wf.encode_params(item) for item in items]
        self.digest = hashlib.sha256("\n".join(self.params).encode()).hexdigest()[:32]
        self.link = ParentLink(r.inv.instance_id, r.inv.run_key, "")

    # -- one fold -------------------------------------------------------------------------------
    def fold(self, entry: JournalEntry | None) -> tuple[JournalEntry, JournalEntry | None]:
        """Take the new reports, start children into the free places, and write the entry. Return it,
        and the finished entry once the batch ended."""
        r = self.r
        state = list(entry.extra["state"]) if entry is not None else [WAITING] * len(self.params)
        rev = entry.rev + 1 if entry is not None else 1
        outcomes = self._take_reports(state)
        new_parts = self._write_parts(rev, outcomes)
        succeeded, failed = state.count(SUCCEEDED), state.count(FAILED)
        reason = self.policy.reason(succeeded, failed)
        if reason is None:
            self._start(state)
        else:
            self._stop(state)
        seq = entry.seq if entry is not None else r.journal.new_seq()
        now = r.inv.now()
        extra = {"workflow": self.workflow, "digest": self.digest, "items": len(self.params)}
        if reason is not None:
            stored = self._assemble(state, new_parts)
            ended = batches.record_batch(
                r, entry, EntryKind.MAP, self.name, self.op, stored, reason, len(self.params),
                limit=MAX_RESULT_BYTES, extra=extra | {"state": "".join(state)},
            )  # fmt: skip
            return ended, ended
        if entry is not None and not outcomes and "".join(state) == entry.extra["state"]:
            return entry, None  # woken with nothing new: nothing to write
        waiting = JournalEntry(
            seq,
            EntryKind.MAP,
            self.name,
            EntryStatus.WAITING,
            entry.started_at if entry is not None else now,
            extra=extra | {"state": "".join(state), "limit": self.limit},
            op=self.op,
        )
        return r.write(entry, waiting), None

    def child_id(self, index: int) -> str:
        return children.default_child_id(self.r.inv.instance, f"{self.op}.{index}")

    # -- reports in --------------------------------------------------------------------------------
    def _take_reports(self, state: list[str]) -> dict[int, dict[str, Any]]:
        """The outcomes (as a batch entry stores them) of the items whose children reported; their
        states updated. Every report for this map is marked taken: it is deleted at the suspend."""
        r = self.r
        prefix = f"{children.REPORTS}#{self.op}."
        outcomes: dict[int, dict[str, Any]] = {}
        taken = set(r.inv.taken)
        for event in r.inv.events(children.REPORTS):
            if not event.key.startswith(prefix) or event.key in taken:
                continue
            where = event.key[len(prefix) :].split("#", 1)[0]
            index = int(where) if where.isdigit() else -1
            if not 0 <= index < len(state):
                continue
            r.inv.taken.append(event.key)
            report = json.loads(event.payload)
            # A waiting item may have ended too: its child was created by a fold that crashed before
            # its entry was written, and started by the sweeper. An ended or stopped one was folded
            # already (a crash before the delete), or nothing takes it any more.
            if state[index] not in (WAITING, RUNNING) or report.get("child_id") != self.child_id(index):
                continue
            outcomes[index] = self._outcome(index, report)
            state[index] = SUCCEEDED if outcomes[index]["status"] == BatchItemStatus.SUCCEEDED else FAILED
        return outcomes

    def _outcome(self, index: int, report: dict[str, Any]) -> dict[str, Any]:
        inv = self.r.inv
        out: dict[str, Any] = {"index": index, "status": BatchItemStatus.FAILED.value, "text": None}
        if report["status"] != Status.COMPLETE.value:
            error = report.get("error") or {}
            message = error.get("message") or f"child {report['child_id']!r} ended {report['status']}"
            info = ErrorInfo(error.get("name") or "ChildWorkflowError", message[: batches.ERROR_CHARS])
            return out | {"error": BatchError(info.name, info.message).to_dict()}
        text, ref = report.get("output"), report.get("output_ref")
        if ref is not None:  # copied under the parent's own key: the child's may expire first
            text = serde.encode(
                inv.engine_call(payloads.load, inv.env, None, ref), what=f"output of child {index}"
            )
        if text is not None:
            text, ref = inv.engine_call(
                payloads.store,
                inv.env,
                text,
                inv.blob_key("map", self.op, index),
                what=f"result of map {self.name!r} item {index}",
                inline_room=ITEM_INLINE_BYTES,
            )
        return out | {"status": BatchItemStatus.SUCCEEDED.value, "text": text, "ref": ref, "error": None}

    def _write_parts(self, rev: int, outcomes: dict[int, dict[str, Any]]) -> list[EventRecord]:
        """Write ``outcomes`` as part events, each at most about PART_BYTES."""
        inv, written = self.r.inv, []
        groups: list[list[dict[str, Any]]] = [[]]
        size = 0
        for index in sorted(outcomes):
            text = json.dumps(outcomes[index], separators=(",", ":"))
            if groups[-1] and size + len(text) > PART_BYTES:
                groups.append([])
                size = 0
            groups[-1].append(outcomes[index])
            size += len(text)
        for n, group in enumerate(g for g in groups if g):
            key = f"{PARTS}#{self.op}#{rev:06d}.{inv.lease.owner}.{n}"
            payload = serde.dumps({"items": group}, what=f"part of map {self.name!r}")
            event = EventRecord(key, PARTS, payload, inv.now())
            inv.engine_call(inv.env.store.put_event, inv.instance_id, inv.run_key, event)
            written.append(event)
        return written

    def _assemble(self, state: list[str], new_parts: list[EventRecord]) -> list[dict[str, Any]]:
        """Every started item as the batch entry stores it, its outcome read from the parts."""
        inv = self.r.inv
        prefix = f"{PARTS}#{self.op}#"
        parts = {e.key: e for e in inv.events(PARTS) if e.key.startswith(prefix)}
        parts |= {e.key: e for e in new_parts}
        found: dict[int, dict[str, Any]] = {}
        for event in parts.values():
            for item in json.loads(event.payload)["items"]:
                found[item["index"]] = item
        taken = set(inv.taken)
        inv.taken.extend(k for k in parts if k not in taken)
        stored = []
        for index, mark in enumerate(state):
            if mark in ENDED:
                if index not in found:
                    raise WorkflowError(f"map {self.name!r}: the outcome of item {index} is missing")
                stored.append(found[index])
            elif mark in (RUNNING, STOPPED):
                status = BatchItemStatus.STARTED.value
                stored.append({"index": index, "status": status, "text": None, "error": None})
        return stored

    # -- children out --------------------------------------------------------------------------------
    def _start(self, state: list[str]) -> None:
        """Start the next waiting items, as many as there are free places."""
        free = self.limit - state.count(RUNNING)
        start = [i for i, mark in enumerate(state) if mark == WAITING][: max(free, 0)]
        if not start:
            return
        inv, now = self.r.inv, self.r.inv.now()
        records = [
            InstanceRecord(
                id=self.child_id(i),
                workflow=self.wf.name,
                status=Status.QUEUED,
                params=self.params[i],
                created_at=now,
                updated_at=now,
                incarnation=new_incarnation(),
                parent=replace(self.link, op=f"{self.op}.{i}"),
                limit_key=limit_key(
                    self.wf.name, self.wf.limits, partial(self.wf.decode_params, self.params[i])
                ),
            )
            for i in start
        ]
        woken = [record.id for record in records if self._create(record)]
        if woken:
            inv.engine_call(inv.wake_all, woken, now)
        for i in start:
            state[i] = RUNNING

    def _create(self, record: InstanceRecord) -> bool:
        """Create the child, or adopt it if this map created it before a crash. Return True if it
        waits for its first wake-up. (One conditional put each: half the write units of a
        transaction, and a crash between two creates leaves nothing to undo.)"""
        inv = self.r.inv
        try:
            inv.engine_call(inv.env.store.create_instance, record)
            return True
        except InstanceAlreadyExistsError:
            existing = inv.engine_call(inv.env.store.get_instance, record.id)
        if existing is None or existing.parent != record.parent:
            raise InstanceAlreadyExistsError(
                f"map {self.name!r}: instance {record.id!r} exists and is not this map's child"
            ) from None
        return existing.status is Status.QUEUED  # one that started reports when it ends

    def _stop(self, state: list[str]) -> None:
        """The batch ended: terminate the children still running, and forget their reports (nothing
        would take them)."""
        inv = self.r.inv
        now = inv.now()
        expires = int(now + inv.env.settings.retention_days * 86400)
        for index, mark in enumerate(state):
            if mark != RUNNING:
                continue
            state[index] = STOPPED
            try:
                after = inv.engine_call(
                    inv.env.store.control, self.child_id(index), Control.TERMINATE, now, expires
                )
            except InvalidStateError:
                continue  # it ended meanwhile: its report finds the batch over
            if after.due_at is not None:
                inv.engine_call(inv.env.store.settle, after.id, after.due_at)
