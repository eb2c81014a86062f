"""The workload: a chain of small steps, optionally with one sleep; and a per-message call recorder."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from framework import Step, WorkflowEvent, workflow
from framework.local import LocalRuntime

CHAIN = "bench-chain"


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


@dataclass(frozen=True)
class Delivery:
    """One work-queue message as the worker handled it: its outcome and the AWS calls made meanwhile."""

    outcome: str
    calls: Counter[str]

    def dynamodb(self) -> int:
        return sum(n for op, n in self.calls.items() if op.startswith("dynamodb."))


@contextmanager
def observe(rt: LocalRuntime) -> Iterator[list[Delivery]]:
    """Record a Delivery for each message, by wrapping the ``process_message`` that the worker handler
    calls. The poller's own ReceiveMessage and DeleteMessageBatch fall outside it."""
    import handlers.worker as worker_handler
    from framework.worker import process_message as real

    log: list[Delivery] = []

    def recorded(body: str, context: Any = None, env: Any = None) -> Any:
        before = rt.aws_calls.copy()
        outcome = real(body, context, env)
        log.append(Delivery(outcome.value, rt.aws_calls - before))
        return outcome

    with mock.patch.object(worker_handler, "process_message", recorded):
        yield log
