"""A step that needs longer than an invocation gives: its deadline cuts are counted, and charged in the
end, so that its body starts a bounded number of times and the instance finishes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from framework import StepFailedError, Workflow
from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.records import EntryStatus
from framework.engine.step import FREE_CUTS
from tests.unit.harness import Harness

# An invocation of 50 ms (real time, as the attempt timer counts) with a margin of 20 ms: each attempt
# gets 40 ms, under 90% of the invocation, so a cut is the invocation's, not the step's timeout.
INVOCATION = 0.05
SETTINGS = Settings(time_margin=0.02)


def forever(starts: list[int]) -> Any:
    def body() -> None:
        starts.append(1)
        while True:  # until the attempt timer interrupts it
            time.sleep(0.005)

    return body


def cut_harness(config: dict[str, Any], starts: list[int], *, catch: bool = True) -> tuple[Harness, Any]:
    def flow(event: Any, step: Any) -> Any:
        try:
            return step.do("slow", forever(starts), config=config)
        except StepFailedError as exc:
            if not catch:
                raise
            return {"error_type": exc.error_type, "message": exc.error_message}

    h = Harness(Workflow("cuts", flow), settings=SETTINGS, invocation_seconds=INVOCATION)
    return h, h.start("cuts")


def test_a_step_longer_than_any_invocation_fails_after_a_bounded_number_of_cuts() -> None:
    """Failure 6 of issue 11: with ``retries.limit=0`` the body started 6 times and would go on."""
    starts: list[int] = []
    h, inst = cut_harness({"retries": {"limit": 0}}, starts)
    h.run_until_idle(limit=50)
    assert len(starts) == FREE_CUTS + 1  # two free cuts, then the third is charged: limit 0 fails it
    out = inst.status().output
    assert out["error_type"] == "StepTimeoutError"
    assert out["message"].startswith("step 'slow' needs longer than the worker's timeout")
    [entry] = full_journal(h.store, inst.id, 1)
    assert entry.status is EntryStatus.FAILED and len(entry.attempts) == 1


def test_the_cut_count_is_written_before_each_suspension() -> None:
    starts: list[int] = []
    h, inst = cut_harness({"retries": {"limit": 0}}, starts)
    body = h.queue.due()[0]
    for cuts in range(1, FREE_CUTS + 1):
        h.deliver(body)
        [entry] = full_journal(h.store, inst.id, 1)
        assert (entry.status, entry.extra, entry.rev, entry.attempts) == (
            EntryStatus.RETRYING,
            {"cuts": cuts},
            cuts,
            (),
        )  # not charged: no attempt recorded
        [body] = h.queue.due()
    h.deliver(body)
    assert len(starts) == FREE_CUTS + 1 and inst.status().status == "complete"


def test_retries_apply_once_the_cuts_are_charged() -> None:
    starts: list[int] = []
    h, inst = cut_harness({"retries": {"limit": 2, "delay": 1}}, starts, catch=False)
    h.run_until_idle(limit=50)
    assert len(starts) == FREE_CUTS + 3  # the free cuts, then each of the three attempts is charged
    st = inst.status()
    assert st.status == "errored" and st.error["name"] == "StepFailedError"
    assert "step 'slow' needs longer than the worker's timeout" in st.error["message"]


@pytest.mark.parametrize("limit", [0, 2])
def test_an_at_most_once_step_is_charged_for_every_cut(limit: int) -> None:
    starts: list[int] = []
    h, inst = cut_harness({"retries": {"limit": limit, "delay": 1}, "at_most_once": True}, starts)
    h.run_until_idle(limit=50)
    assert len(starts) == limit + 1  # never re-run uncharged: at most once per attempt
    assert inst.status().output["error_type"] == "InvocationCrashedError"
