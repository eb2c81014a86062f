"""A fast driver for unit tests: the real worker code on the in-memory store and queue, virtual time."""

from __future__ import annotations

from collections import Counter
from typing import Any

from framework.blobs import MemoryBlobs
from framework.client import WorkflowClient
from framework.clock import VirtualClock
from framework.durations import Duration, parse_duration
from framework.environment import Environment, Settings
from framework.queue import MemoryQueue
from framework.registry import Registry, Workflow
from framework.store import MemoryStore
from framework.worker import Outcome, process_message


class FakeContext:
    def __init__(self, clock: VirtualClock, seconds: float) -> None:
        self._clock = clock
        self._deadline = clock.now() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock.now()) * 1000))


class Harness:
    def __init__(
        self, *workflows: Workflow, settings: Settings | None = None, invocation_seconds: float = 300
    ):
        self.clock = VirtualClock(start=1_700_000_000.0)
        self.store = MemoryStore()
        self.queue = MemoryQueue(self.clock)
        self.blobs = MemoryBlobs()
        self.env = Environment(
            store=self.store,
            queue=self.queue,
            clock=self.clock,
            registry=Registry(workflows),
            blobs=self.blobs,
            settings=settings or Settings(),
        )
        self.client = WorkflowClient(environment=self.env)
        self.outcomes: Counter[Outcome] = Counter()
        self.invocation_seconds = invocation_seconds

    def deliver(self, body: str) -> Outcome:
        outcome = process_message(body, FakeContext(self.clock, self.invocation_seconds), self.env)
        self.outcomes[outcome] += 1
        return outcome

    def run_due(self) -> int:
        """Deliver every message due now (and those they send that are due now too)."""
        delivered = 0
        while batch := self.queue.due():
            for body in batch:
                self.deliver(body)
                delivered += 1
        return delivered

    def run_until_idle(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            self.run_due()
            nxt = self.queue.next_due()
            if nxt is None:
                return
            self.clock.set(nxt)
        raise AssertionError("still busy")

    def advance(self, duration: Duration) -> None:
        end = self.clock.now() + parse_duration(duration)
        while True:
            self.run_due()
            nxt = self.queue.next_due()
            if nxt is None or nxt > end:
                break
            self.clock.set(nxt)
        self.clock.set(end)
        self.run_due()

    def start(self, workflow: str, params: Any = None, **kwargs: Any) -> Any:
        return self.client.create(workflow, params, **kwargs)
