"""Marks of the step attempts that run long, so that an instance's status names the step it runs.

A short step costs nothing here: an attempt is marked in the instance item (``Store.mark_running``, one
conditional UpdateItem) only once it has run ``Settings.running_mark_seconds``, by a timer on one
watcher thread per process; one that ends first is never marked. A marked attempt is unmarked
(``Store.clear_running``, one more UpdateItem, which also stores the run's step counts) when it ends,
after its outcome was written to the journal. So a step that runs long costs two writes more, and every
other step none.

A mark never outlives its step or its lease:
- the unmarking is part of the attempt's end: if it fails, the invocation hands over as for any failed
  write of the engine (``expire_lease`` forgets the marks), so no later step runs under a stale mark;
- an attempt that ends another way (the run suspends, stops, loses its lease) cancels its timer, waiting
  for a mark being written, and the release that follows rewrites the whole item without marks;
- every write is conditioned on the lease, ``acquire_lease`` forgets the marks a crashed invocation
  left, and readers show marks only while the lease is live.
A replay marks nothing: recorded steps return their outcome without an attempt.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import TYPE_CHECKING

from framework.backends.store import LeaseLost
from framework.core.logs import logger
from framework.core.progress import RunningStep

if TYPE_CHECKING:
    from framework.engine.invocation import Invocation

MAX_MARKED = 8  # attempts of one invocation marked at once, at most (an async run may run 64)


class Mark:
    """The mark of one attempt: written by the watcher once due, unless the attempt ended first."""

    def __init__(self, inv: Invocation, step: RunningStep) -> None:
        self._inv = inv
        self.step = step
        self._lock = threading.Lock()  # held while the mark is written: ``end`` waits for it
        self.ended = False
        self._written = False

    def fire(self) -> None:
        """On the watcher thread: write the mark, unless the attempt ended. Best effort: a failed write
        leaves the step unshown, nothing else."""
        with self._lock:
            if self.ended:
                return
            inv = self._inv
            try:
                inv.env.store.mark_running(inv.instance_id, inv.lease.owner, self.step)
                self._written = True
            except LeaseLost:
                pass  # the lease is another's: nothing of this invocation may be shown
            except Exception as exc:
                logger.warning("running step not marked", extra={"error": type(exc).__name__})

    def cancel(self) -> bool:
        """Stop the timer (waiting for a write under way). Return whether the mark was written."""
        with self._lock:
            self.ended = True
            written = self._written
        self._inv.marks.discard(self)
        return written

    def end(self) -> None:
        """On the workflow's thread, once the attempt's outcome is in the journal: unmark it, if it was
        marked, and store the run's counts. A failed write is the engine's (``Invocation.engine_call``)."""
        if self.cancel():
            inv = self._inv
            assert inv.replay is not None
            counts = inv.replay.journal.counts
            owner, op = inv.lease.owner, self.step.op
            inv.engine_call(inv.env.store.clear_running, inv.instance_id, owner, op, counts)


class _Watcher:
    """One daemon thread per process that writes the marks that come due, earliest first."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, Mark]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, due: float, mark: Mark) -> None:
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="step-marks", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (due, next(self._order), mark))
            if self._heap[0][2] is mark:
                self._cv.notify()

    def _next(self) -> Mark:
        with self._cv:
            while True:
                while self._heap and self._heap[0][2].ended:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay <= 0:
                    return heapq.heappop(self._heap)[2]
                self._cv.wait(delay)

    def _loop(self) -> None:
        while True:
            self._next().fire()


_WATCHER = _Watcher()


def start(inv: Invocation, op: str, name: str, attempt: int, started_at: float) -> Mark | None:
    """Mark the attempt once it has run ``running_mark_seconds``, unless it ends first (``Mark.end``,
    or ``Mark.cancel``). None when the invocation has MAX_MARKED marks already."""
    if len(inv.marks) >= MAX_MARKED:
        return None
    mark = Mark(inv, RunningStep(op, name, attempt, started_at))
    inv.marks.add(mark)
    _WATCHER.add(time.monotonic() + inv.env.settings.running_mark_seconds, mark)
    return mark


def end(mark: Mark | None) -> None:
    """The attempt's outcome is in the journal: unmark it, if it was marked (``Mark.end``)."""
    if mark is not None:
        mark.end()


def cancel(mark: Mark | None) -> None:
    """The attempt is over: its mark, if it has one, is written no more (``Mark.cancel``)."""
    if mark is not None:
        mark.cancel()


def cancel_all(inv: Invocation) -> None:
    """Before the lease is let go (release, hand-over) or lost: no mark may be written after."""
    for mark in list(inv.marks):
        mark.cancel()
