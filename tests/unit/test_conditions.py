"""step.wait_for_condition: checks and waits on one journal entry, in sync and async workflows."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from framework import InvalidConfigError, StepFailedError, WorkflowTimeoutError, poll_every
from framework.api.registry import Workflow
from framework.backends.store import full_journal
from framework.core.records import EntryKind, EntryStatus
from tests.unit.harness import Harness


def wf(name: str) -> Any:
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_polls_until_done_on_one_entry_and_replay_runs_no_check(mode: str) -> None:
    checks: list[int] = []
    times: list[float] = []

    def check(state: dict[str, int], ctx: Any) -> dict[str, int]:
        checks.append(state["n"])
        times.append(h.clock.now())
        return {"n": state["n"] + 1}

    strategy = poll_every("30 seconds", until=lambda s: s["n"] >= 4)
    if mode == "sync":

        @wf("cond-sync")
        def flow(event: Any, step: Any) -> Any:
            state = step.wait_for_condition("ready", check, initial_state={"n": 0}, wait_strategy=strategy)
            step.sleep("nap", "1 hour")
            return state

    else:

        @wf("cond-async")
        async def flow(event: Any, step: Any) -> Any:
            state = await step.wait_for_condition(
                "ready", check, initial_state={"n": 0}, wait_strategy=strategy
            )
            await step.sleep("nap", "1 hour")
            return state

    h = Harness(flow)
    inst = h.start(f"cond-{mode}")
    h.run_until_idle()
    assert inst.status().output == {"n": 4}
    assert checks == [0, 1, 2, 3]  # each check once, and none on the replay after the sleep
    assert [round(b - a) for a, b in itertools.pairwise(times)] == [30, 30, 30]
    entries = [e for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.CONDITION]
    assert len(entries) == 1 and entries[0].status is EntryStatus.COMPLETE and entries[0].extra["checks"] == 4
    row = next(e for e in inst.history() if e.kind == "condition")
    assert row.status == "complete"


def test_max_attempts_raises_a_workflow_timeout_on_first_run_and_on_replay() -> None:
    seen: list[str] = []

    @wf("cond-give-up")
    def flow(event: Any, step: Any) -> Any:
        try:
            step.wait_for_condition(
                "never",
                lambda s: s,
                initial_state=False,
                wait_strategy=poll_every(5, until=bool, max_attempts=3, backoff=2),
            )
        except WorkflowTimeoutError as exc:
            seen.append(str(exc))
        step.sleep("nap", "1 hour")

    h = Harness(flow)
    h.start("cond-give-up")
    h.run_until_idle()
    assert seen == ["the condition was not met after 3 checks"] * 2


def test_a_failing_check_fails_the_condition() -> None:
    @wf("cond-fails")
    def flow(event: Any, step: Any) -> Any:
        def check(state: Any) -> Any:
            raise ConnectionError("status page down")

        with pytest.raises(StepFailedError, match="status page down"):
            step.wait_for_condition("c", check, wait_strategy=lambda s, n: 1)
        return "handled"

    h = Harness(flow)
    inst = h.start("cond-fails")
    h.run_until_idle()
    assert inst.status().output == "handled"


@pytest.mark.parametrize(
    "make",
    [
        lambda: poll_every("soon", until=bool),
        lambda: poll_every(1, until=3),
        lambda: poll_every(1, until=bool, max_attempts=0),
        lambda: poll_every(1, until=bool, backoff=0.5),
    ],
)
def test_poll_every_checks_its_arguments(make: Any) -> None:
    with pytest.raises(InvalidConfigError):
        make()
