"""tests/unit/test_status_progress.py rerun on DynamoDB (moto in-process), and what marking a running
step costs there, counted call by call with botocore's hooks."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from moto import mock_aws

from framework.api.registry import Workflow
from framework.backends.environment import Settings
from framework.core.records import Status
from framework.manage.client import Instance
from tests.unit import harness
from tests.unit.test_status_progress import *  # noqa: F403 - every status test here too
from tests.unit.test_status_progress import eventually


@pytest.fixture(autouse=True)
def on_dynamodb() -> Iterator[None]:
    harness.BACKEND["store"] = "dynamodb"
    try:
        with mock_aws():
            yield
    finally:
        harness.BACKEND["store"] = "memory"


STEPS = 5


def _run_counting(settings: Settings, hold: bool) -> Counter[str]:
    """Run a workflow of STEPS steps; return the DynamoDB calls its invocation made, by operation. With
    ``hold``, each step's body returns only once the instance item shows it running, so that each is
    marked for sure; the reads that look are the test's, not counted."""
    shown: list[Instance] = []

    def body(name: str) -> Any:
        def run() -> str:
            if hold:
                with uncounted():
                    eventually(
                        shown[0].status, lambda s: s.running_step is not None and s.running_step.name == name
                    )
            return name

        return run

    def wf(event: Any, step: Any) -> Any:
        return [step.do(f"s{i}", body(f"s{i}")) for i in range(STEPS)]

    h = harness.Harness(Workflow(name="counted", fn=wf), settings=settings)
    client = h.store.inner._db._client  # under ConflictRetrying: the boto3 client itself
    calls: Counter[str] = Counter()
    counting = threading.local()

    def count(model: Any, **_: Any) -> None:
        if not getattr(counting, "off", False):
            calls[model.name] += 1

    @contextmanager
    def uncounted() -> Iterator[None]:
        counting.off = True
        try:
            yield
        finally:
            counting.off = False

    with uncounted():
        shown.append(h.start("counted", id="c1"))
    client.meta.events.register("before-call.dynamodb.*", count)
    try:
        h.run_due()
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", count)
    assert shown[0].status().status is Status.COMPLETE
    return calls


def test_a_short_step_costs_no_call_and_a_long_one_two_updates() -> None:
    # No look for pause requests (once a second of running time): only what the steps cost is counted.
    quiet = {"control_check_seconds": 3600.0}
    short = _run_counting(Settings(running_mark_seconds=60, **quiet), hold=False)  # type: ignore[arg-type]
    # The lease, one journal put per step, the release: no call for the status.
    assert short == Counter({"UpdateItem": 1, "PutItem": STEPS + 1})
    long = _run_counting(Settings(running_mark_seconds=0, **quiet), hold=True)  # type: ignore[arg-type]
    # Each step marked once it ran long (one UpdateItem), and unmarked as it ended (one more).
    assert long == short + Counter({"UpdateItem": 2 * STEPS})
