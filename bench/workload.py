"""The workload: a chain of small steps, optionally with one sleep; and a per-message call recorder."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from framework import Step, WorkflowEvent, workflow
from framework.local import LocalRuntime

CHAIN = "bench-chain"
READS = frozenset(f"dynamodb.{op}" for op in ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"))


def _body(i: int) -> dict[str, int]:
    return {"i": i}


@workflow(CHAIN)
def chain(event: WorkflowEvent, step: Step) -> int:
    """``steps`` steps that each return a tiny dict; after ``sleep_after`` of them, ``step.sleep(sleep)``."""
    params = event.payload
    for i in range(params["steps"]):
        step.do(f"step-{i}", functools.partial(_body, i))
        if params.get("sleep_after") == i + 1:
            step.sleep("nap", params["sleep"])
    return int(params["steps"])


class CallLog(Counter[str]):
    """A Counter that also keeps the order in which keys were incremented, so that a run's AWS calls can
    be read as a sequence. ``LocalRuntime._count`` does ``aws_calls[op] += 1``: each call is one
    ``__setitem__``. Copies (``copy()``, arithmetic) are plain counts with no order of their own."""

    def __init__(self, counts: Iterable[tuple[str, int]] | None = None) -> None:
        super().__init__()
        self.order: list[str] = []
        for op, n in counts or ():
            super().__setitem__(op, n)

    def __setitem__(self, op: str, n: int) -> None:
        self.order.append(op)
        super().__setitem__(op, n)

    def copy(self) -> Counter[str]:  # type: ignore[override]
        return Counter(self)


@dataclass(frozen=True)
class Delivery:
    """One work-queue message as the worker handled it: its outcome and the AWS calls made meanwhile,
    as counts and, in ``sequence``, in the order they were made."""

    outcome: str
    calls: Counter[str]
    sequence: tuple[str, ...] = ()

    def dynamodb(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("dynamodb."))

    def reads_after_first_write(self) -> int:
        """DynamoDB reads made once the first journal PutItem (the first step's) had been written: reads
        between steps, or after the last one. A resume's journal read comes before it."""
        if "dynamodb.PutItem" not in self.sequence:
            return 0
        first = self.sequence.index("dynamodb.PutItem")
        return sum(op in READS for op in self.sequence[first + 1 :])


@contextmanager
def observe(rt: LocalRuntime) -> Iterator[list[Delivery]]:
    """Record a Delivery for each message, by wrapping the ``process_message`` that the worker handler
    calls. The poller's own ReceiveMessage and DeleteMessageBatch fall outside it. Swaps
    ``rt.aws_calls`` for a CallLog with the same counts, to see the order of the calls."""
    import handlers.worker as worker_handler
    from framework.engine.invocation import process_message as real

    if not isinstance(rt.aws_calls, CallLog):
        rt.aws_calls = CallLog(rt.aws_calls.items())
    calls = rt.aws_calls
    log: list[Delivery] = []

    def recorded(body: str, context: Any = None, env: Any = None) -> Any:
        before, start = calls.copy(), len(calls.order)
        outcome = real(body, context, env)
        log.append(Delivery(outcome.value, calls - before, tuple(calls.order[start:])))
        return outcome

    with mock.patch.object(worker_handler, "process_message", recorded):
        yield log


def create_floor_table(db: Any, name: str) -> None:
    """The floors' table: the journal's keys (``pk``, ``sk``), on demand, no index."""
    db.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
