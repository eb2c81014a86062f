"""The queue Protocol (send with a delay, one message or a batch), SQS, and the in-memory fake."""

from __future__ import annotations

import heapq
import itertools
import threading
from typing import Any, Protocol

from framework.core.clock import Clock

MAX_DELAY_SECONDS = 900  # SQS's limit per message; longer waits are parked (framework.engine.sweeper)
BATCH = 10  # SendMessageBatch's limit


class Queue(Protocol):
    def send(self, body: str, delay_seconds: int) -> None:
        """Send one message, hidden for ``delay_seconds`` (0 to 900)."""

    def send_batch(self, messages: list[tuple[str, int]]) -> list[int]:
        """Send (body, delay) pairs, ten to a request. Return the positions of those not sent."""


class SqsQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, body: str, delay_seconds: int) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=body, DelaySeconds=delay_seconds)

    def send_batch(self, messages: list[tuple[str, int]]) -> list[int]:
        failed: list[int] = []
        for start in range(0, len(messages), BATCH):
            chunk = messages[start : start + BATCH]
            entries = [
                {"Id": str(start + i), "MessageBody": body, "DelaySeconds": delay}
                for i, (body, delay) in enumerate(chunk)
            ]
            try:
                result = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            except Exception:  # the whole request failed: none of the chunk was sent
                failed += range(start, start + len(chunk))
                continue
            failed += [int(f["Id"]) for f in result.get("Failed", [])]
        return sorted(failed)


class MemoryQueue:
    """A delay queue on an injected clock: ``due()`` pops the messages whose delay has passed."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.sent: list[tuple[str, int]] = []

    def send(self, body: str, delay_seconds: int) -> None:
        if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
            raise ValueError(f"DelaySeconds must be 0 to {MAX_DELAY_SECONDS}, got {delay_seconds}")
        with self._lock:
            self.sent.append((body, delay_seconds))
            heapq.heappush(self._heap, (self._clock.now() + delay_seconds, next(self._order), body))

    def send_batch(self, messages: list[tuple[str, int]]) -> list[int]:
        failed = []
        for i, (body, delay) in enumerate(messages):
            try:
                self.send(body, delay)
            except Exception:  # a test's failing ``send``: the batch reports it, as SQS does
                failed.append(i)
        return failed

    def due(self) -> list[str]:
        now = self._clock.now()
        with self._lock:
            ready = []
            while self._heap and self._heap[0][0] <= now:
                ready.append(heapq.heappop(self._heap)[2])
            return ready

    def next_due(self) -> float | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
