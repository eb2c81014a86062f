"""``step.invoke``: start a child instance, and wait for the report of how it ended.

The entry is written after the child is created, so a crash between the two finds, on replay, a child
of this very call (same parent, run and op) and adopts it, waking it if it is still queued (its
wake-up may not have been sent). The child reports once it has finished
(``framework.engine.children``); the first report taken completes the entry, and a replay returns what
the entry recorded without looking at the child again.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from framework.core import serde
from framework.core.progress import WaitInfo, WaitKind
from framework.core.records import Control, EntryKind, EntryStatus, JournalEntry, ParentLink, Status
from framework.engine import children, payloads
from framework.engine.ops import Operation, Wait
from framework.errors import (
    ChildWorkflowError,
    InstanceAlreadyExistsError,
    InvalidStateError,
    WorkflowTimeoutError,
)

if TYPE_CHECKING:
    from framework.engine.replay import Claim, Replay


def run(
    r: Replay, claim: Claim, name: str, workflow: str, params: Any, child_id: str | None, seconds: float
) -> Operation:
    """Run ``workflow`` as a child instance and return its output; raise ChildWorkflowError if it ended
    errored or terminated, WorkflowTimeoutError (and terminate it) if ``seconds`` passed first."""
    op, entry = claim.op, claim.entry
    # -- check
    r.same_as_recorded(entry, f"invoke {name!r}", "workflow", workflow)
    if entry is not None and entry.status is not EntryStatus.WAITING:
        return _recorded(r, entry)
    # -- execute
    if entry is None:
        entry = r.write(None, _start(r, op, name, workflow, params, child_id, seconds))
    while True:
        event = next(iter(children.reports_to(r.inv.events(children.REPORTS), op)), None)
        if event is not None:
            done = r.write(entry, _ended(r, entry, json.loads(event.payload)))
            r.inv.taken.append(event.key)  # deleted at the next suspend, once the entry is written
            return _recorded(r, done)
        assert entry.wake_at is not None
        if r.inv.now() >= entry.wake_at:
            _terminate(r, entry.extra["child_id"])
            timed_out = replace(entry, status=EntryStatus.TIMED_OUT, ended_at=entry.wake_at)
            return _recorded(r, r.write(entry, timed_out))
        seen = frozenset(e.key for e in r.inv.events(children.REPORTS))
        shown = WaitInfo(WaitKind.INVOKE, name, entry.wake_at, child_id=entry.extra["child_id"])
        yield Wait(entry.wake_at, f"invoke {name!r}", event_type=children.REPORTS, seen=seen, shown=shown)
        entry = r.journal.get(entry.op_id) or entry


def _start(
    r: Replay, op: str, name: str, workflow: str, params: Any, child_id: str | None, seconds: float
) -> JournalEntry:
    """Create the child (or adopt the one an earlier try of this call created) and return the entry."""
    inv, now = r.inv, r.inv.now()
    link = ParentLink(inv.instance_id, inv.run_key, op)
    cid = child_id or children.default_child_id(inv.instance, op)
    record = children.child_record(inv.env, workflow, params, cid, link, now)
    try:
        inv.engine_call(inv.env.store.create_instance, record)
    except InstanceAlreadyExistsError:
        existing = inv.engine_call(inv.env.store.get_instance, cid)
        if existing is None or existing.parent != link:
            raise InstanceAlreadyExistsError(
                f"invoke {name!r}: instance {cid!r} exists and is not this call's child"
            ) from None
        if existing.status is Status.QUEUED:  # the earlier try died before its wake-up was sent
            inv.engine_call(inv.wake, cid, now)
    else:
        inv.engine_call(inv.wake, cid, now)
    return JournalEntry(
        r.journal.new_seq(),
        EntryKind.INVOKE,
        name,
        EntryStatus.WAITING,
        now,
        wake_at=inv.wait_until(now, now + seconds),
        extra={"workflow": workflow, "child_id": cid, "timeout": seconds},
        op=op,
    )


def _ended(r: Replay, entry: JournalEntry, report: dict[str, Any]) -> JournalEntry:
    """The entry completed with the child's report. A large output is copied under the parent's own
    blob key, so that the parent's replay never depends on what is left of the child."""
    inv = r.inv
    status = Status(report["status"])
    extra = entry.extra | {"status": status.value}
    if status is not Status.COMPLETE:
        error = report.get("error") or {}
        extra |= {"error_type": error.get("name", ""), "error_message": error.get("message", "")}
        return replace(entry, status=EntryStatus.FAILED, ended_at=inv.now(), extra=extra)
    text, ref = report.get("output"), report.get("output_ref")
    if ref is not None:
        value = inv.engine_call(payloads.load, inv.env, None, ref)
        text = serde.encode(value, what=f"output of child {entry.extra['child_id']!r}")
        text, ref = payloads.store(inv.env, text, inv.blob_key("invoke", entry.seq), what="child output")
    done = replace(entry, status=EntryStatus.COMPLETE, ended_at=inv.now(), result=text, result_ref=ref)
    return replace(done, extra=extra)


def _terminate(r: Replay, child_id: str) -> None:
    """End the child whose parent stopped waiting for it: nothing would take its output."""
    inv = r.inv
    expires = int(inv.now() + inv.env.settings.retention_days * 86400)
    with contextlib.suppress(InvalidStateError):  # it finished meanwhile
        inv.engine_call(inv.env.store.control, child_id, Control.TERMINATE, inv.now(), expires)


def _recorded(r: Replay, entry: JournalEntry) -> Any:
    if entry.status is EntryStatus.COMPLETE:
        return payloads.load(r.inv.env, entry.result, entry.result_ref)
    child_id = str(entry.extra.get("child_id"))
    if entry.status is EntryStatus.TIMED_OUT:
        raise WorkflowTimeoutError(
            f"invoke {entry.name!r}: child {child_id!r} did not end within {entry.extra.get('timeout')} s"
        )
    raise ChildWorkflowError(
        entry.name,
        child_id,
        str(entry.extra.get("status")),
        str(entry.extra.get("error_type", "")),
        str(entry.extra.get("error_message", "")),
    )
