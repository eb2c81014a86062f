"""An instance's history one page at a time: a count limit, a byte budget, results only when asked for.

A page holds the run's journal entries from a position on (one Query of at most ``limit + 1`` items,
``Store.load_journal_page``), with the instance's events placed among them as ``build_history``
places them: each stored event before the first entry that started after it was sent, or at the end.
Its three DynamoDB reads are the instance item (GetItem), the journal page (Query) and the run's
stored events (Query). One case differs from ``build_history``: an event that a wait took and that is
no longer stored (the engine deletes taken events when the run next suspends) is known only from the
wait's entry, so it is shown next to that wait, just before it if it was sent before the wait began,
else just after it. A stored event is ``consumed`` when a wait of its page took it, else
``buffered``: one whose wait lies on another page shows ``buffered`` on its own page.

Each page stays under ``PAGE_BYTES`` as the Lambda response carries it (the body is JSON inside the
JSON of the response: both encodings are counted). An entry that alone would pass it loses its
result, marked ``result_omitted: "too_large"``. ``limit`` counts every entry shown, events included,
but a wait is never split from the event shown with it. Pages of a finished run, followed cursor by
cursor, show each entry exactly once, in one order whatever the limit. Pages of a run that goes on
show it as it was when each page was read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from framework.backends.dynamodb_items import MAX_SEQ
from framework.backends.environment import Environment
from framework.core.durations import LATEST_EPOCH
from framework.core.records import EventRecord, InstanceRecord, JournalEntry
from framework.errors import InvalidConfigError, InvalidStateError
from framework.manage.history import HistoryEntry, from_entry, from_event

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
PAGE_BYTES = 2 * 1024 * 1024  # a third of Lambda's 6 MB synchronous response
PAGE_OVERHEAD = 4096  # the id, the cursor and the JSON around the entries
CURSOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of an instance's history: pass ``cursor`` back for the next, until it is None."""

    entries: list[HistoryEntry]
    cursor: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryPage:
        """The page ``as_dict`` gave (``GET /instances/{id}/history``)."""
        return cls([HistoryEntry.from_dict(e) for e in data["entries"]], data.get("cursor"))

    def as_dict(self, instance_id: str) -> dict[str, Any]:
        return {"id": instance_id, "entries": [e.as_dict() for e in self.entries], "cursor": self.cursor}


@dataclass(frozen=True, slots=True)
class _Position:
    seq: int  # the next journal entry to show
    mark: float  # the latest start among the entries before it: an event sent earlier was shown
    after: tuple[float, str] | None  # the last event not taken shown just before ``seq``


@dataclass(frozen=True, slots=True)
class _Unit:
    """What goes on a page together: a journal entry (with the event its wait took, if that event is
    no longer stored), or a stored event."""

    entry: JournalEntry | None = None
    own: EventRecord | None = None  # the event the entry's wait took, shown next to it
    event: EventRecord | None = None
    consumed: bool = False  # the stored event was taken by a wait of the page

    def show(self, env: Environment, now: float, *, results: bool) -> list[HistoryEntry]:
        if self.entry is None:
            assert self.event is not None
            return [from_event(self.event, {self.event.key} if self.consumed else set())]
        shown = from_entry(env, self.entry, now, results=results, sizes=True)
        if self.own is None:
            return [shown]
        own = from_event(self.own, {self.own.key})
        return [own, shown] if self.own.sent_at < self.entry.started_at else [shown, own]


def every_page(read: Callable[..., HistoryPage], limit: int, *, results: bool) -> Iterator[HistoryPage]:
    """Every page that ``read(limit, cursor, results=...)`` gives, first to last, following the cursors."""
    cursor: str | None = None
    while True:
        page = read(limit, cursor, results=results)
        yield page
        if page.cursor is None:
            return
        cursor = page.cursor


def wire_bytes(entry: HistoryEntry) -> int:
    """What the entry adds to a Lambda response that carries it in a JSON body: encoded twice."""
    return len(json.dumps(json.dumps(entry.as_dict(), default=str))) + 2


def read_page(
    env: Environment, record: InstanceRecord, *, limit: int, cursor: str | None, results: bool
) -> HistoryPage:
    """The page of ``record``'s current run at ``cursor`` (None: the first). Raise InvalidConfigError
    for a bad limit or a cursor that is not one this returned for the instance, InvalidStateError for
    a cursor of another run (the instance restarted since)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidConfigError(f"limit must be 1 to {MAX_LIMIT}")
    if not isinstance(results, bool):
        raise InvalidConfigError("results must be true or false")
    pos = _Position(0, -1.0, None) if cursor is None else decode_cursor(cursor, record)
    stored, more = env.store.load_journal_page(record.id, record.run_key, pos.seq, limit + 1)
    more = more and bool(stored)  # a page with no entry and more to come would never move on
    last = stored[-1].seq if stored else MAX_SEQ
    journal = [e for e in record.with_tail(stored) if e.seq >= pos.seq and (not more or e.seq <= last)]
    events = [e for e in env.store.load_events(record.id, record.run_key) if not e.type.startswith("$")]
    now = env.clock.now()
    taken: list[HistoryEntry] = []
    size, seq, mark, after = PAGE_OVERHEAD, pos.seq, pos.mark, pos.after
    for unit in _units(journal, events, pos, to_end=not more):
        if taken and len(taken) >= limit:
            return HistoryPage(taken, encode_cursor(record, _Position(seq, mark, after)))
        entries = unit.show(env, now, results=results)
        unit_size = sum(map(wire_bytes, entries))
        if taken and (len(taken) + len(entries) > limit or size + unit_size > PAGE_BYTES):
            return HistoryPage(taken, encode_cursor(record, _Position(seq, mark, after)))
        if size + unit_size > PAGE_BYTES:  # alone on its page, and still too large: cut the results
            entries = [_cut(e) for e in entries]
            unit_size = sum(map(wire_bytes, entries))
        taken += entries
        size += unit_size
        if unit.entry is not None:
            seq, mark, after = unit.entry.seq + 1, max(mark, unit.entry.started_at), None
        elif unit.event is not None:
            after = (unit.event.sent_at, unit.event.key)
    return HistoryPage(taken, encode_cursor(record, _Position(seq, mark, after)) if more else None)


def _cut(entry: HistoryEntry) -> HistoryEntry:
    if entry.result_bytes is None or entry.result_omitted is not None:
        return entry
    return replace(entry, result=None, result_omitted="too_large")


def _units(
    journal: list[JournalEntry], events: list[EventRecord], pos: _Position, *, to_end: bool
) -> list[_Unit]:
    """The page's candidates in order. Each stored event not shown on an earlier page goes before
    the first entry that started after it was sent; with ``to_end`` (no entries follow) the rest go
    at the end, else they wait for a later page. An event a wait took and that is no longer stored
    goes with the wait."""
    took = {e.extra["event_key"] for e in journal if "event_key" in e.extra}
    stored = {e.key for e in events}
    free = sorted(
        (
            e
            for e in events
            if e.sent_at >= pos.mark and (pos.after is None or (e.sent_at, e.key) > pos.after)
        ),
        key=lambda e: (e.sent_at, e.key),
    )
    units: list[_Unit] = []
    waiting = iter(free)
    event = next(waiting, None)
    for entry in journal:
        while event is not None and event.sent_at < entry.started_at:
            units.append(_Unit(event=event, consumed=event.key in took))
            event = next(waiting, None)
        x = entry.extra
        own = None
        if "event_key" in x and x["event_key"] not in stored:
            own = EventRecord(x["event_key"], x["event_type"], x["payload"], x["sent_at"])
        units.append(_Unit(entry=entry, own=own))
    while to_end and event is not None:
        units.append(_Unit(event=event, consumed=event.key in took))
        event = next(waiting, None)
    return units


def encode_cursor(record: InstanceRecord, pos: _Position) -> str:
    data = {
        "v": CURSOR_VERSION,
        "id": record.id,
        "inc": record.incarnation,
        "run": record.run,
        "seq": pos.seq,
        "mark": pos.mark,
        "after": list(pos.after) if pos.after else None,
    }
    text = json.dumps(data, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, record: InstanceRecord) -> _Position:
    """The position a cursor of ``encode_cursor`` names, checked field by field. It is not signed: a
    cursor changed by hand is refused, or names another position in the same run's history."""
    bad = InvalidConfigError("cursor is not one this API returned for this instance's history")
    if not isinstance(cursor, str) or len(cursor) > 2000:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or set(data) != {"v", "id", "inc", "run", "seq", "mark", "after"}:
            raise ValueError("not a cursor")
        seq, mark, after, run = data["seq"], data["mark"], data["after"], data["run"]
        if data["v"] != CURSOR_VERSION or not _int_in(seq, 0, MAX_SEQ + 1) or not _int_in(run, 1, 10**9):
            raise ValueError("not a cursor")
        if isinstance(mark, bool) or not isinstance(mark, int | float) or not -1 <= mark <= LATEST_EPOCH:
            raise ValueError("bad mark")  # NaN fails the range too
        if after is not None:
            sent_at, key = after
            if isinstance(sent_at, bool) or not isinstance(sent_at, int | float) or not isinstance(key, str):
                raise ValueError("bad event")
            if not 0 <= sent_at <= LATEST_EPOCH or len(key) > 1000:
                raise ValueError("bad event")
            after = (float(sent_at), key)
    except (ValueError, TypeError, RecursionError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if data["id"] != record.id:
        raise bad
    if data["inc"] != record.incarnation or run != record.run:
        raise InvalidStateError(
            "the instance was restarted or replaced since this cursor was returned; "
            "read its history again without a cursor"
        )
    return _Position(seq, float(mark), after)


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
