"""Skip-wait (``Instance.skip_wait``, ``workflows skip``) and scaled waits (``WORKFLOWS_WAIT_SCALE``,
``workflows dev --fast``) on the virtual clock: what ends, what stays, and that the clock never moved."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from framework import WorkflowTimeoutError, workflow
from framework.backends.environment import Settings
from framework.errors import InvalidConfigError, InvalidStateError
from framework.local import LocalRuntime

failures = {"flaky": 1}


def _flaky() -> str:
    if failures["flaky"] > 0:
        failures["flaky"] -= 1
        raise ConnectionError("payment API unavailable")
    return "charged"


@workflow("skip-chain")
def chain(event: Any, step: Any) -> dict[str, Any]:
    step.do("first", lambda: 1)
    step.sleep("nap", "2 hours")
    try:
        step.wait_for_event("approval", "approve", timeout="3 days")
        answer = "approved"
    except WorkflowTimeoutError:
        answer = "timed out"
    charged = step.do("charge", _flaky, config={"retries": {"limit": 3, "delay": "1 hour"}})
    step.sleep("after", "10 seconds")  # set after the skips: not skipped
    return {"answer": answer, "charged": charged}


@workflow("skip-gather")
async def gather(event: Any, step: Any) -> list[str]:
    async def nap(name: str, length: str) -> str:
        await step.sleep(name, length)
        return name

    return list(await asyncio.gather(nap("short", "1 hour"), nap("long", "5 hours")))


@workflow("skip-event")
def event_only(event: Any, step: Any) -> Any:
    return step.wait_for_event("forever", "go", timeout="365 days").payload


def _shape(inst: Any) -> list[tuple[str, str, str]]:
    return [(e.kind, e.name, e.status) for e in inst.history()]


def test_each_skip_ends_the_current_wait_and_the_clock_stays() -> None:
    failures["flaky"] = 1
    with LocalRuntime(workflows=[chain]) as rt:
        inst = rt.client.create("skip-chain", id="chain-1")
        rt.advance(0)
        assert _shape(inst)[-1] == ("sleep", "nap", "waiting")
        start = rt.clock.now()
        inst.skip_wait()
        rt.advance(0)
        assert _shape(inst)[1:] == [("sleep", "nap", "complete"), ("wait", "approval", "waiting")]
        inst.skip_wait()  # the 3-day timeout
        rt.advance(0)
        assert _shape(inst)[2:] == [("wait", "approval", "timed_out"), ("step", "charge", "retrying")]
        inst.skip_wait()  # the hour before the retry
        rt.advance(0)
        assert _shape(inst)[3:] == [("step", "charge", "complete"), ("sleep", "after", "waiting")]
        assert rt.clock.now() == start  # nothing waited: each wait ended when skipped
        rt.advance("10 seconds")
        st = inst.status()
        assert (st.status, st.output) == ("complete", {"answer": "timed out", "charged": "charged"})
        charge = next(e for e in inst.history() if e.name == "charge")
        assert len(charge.attempts) == 2


def test_a_skip_ends_the_earliest_branch_of_an_async_run_only() -> None:
    with LocalRuntime(workflows=[gather]) as rt:
        inst = rt.client.create("skip-gather", id="gather-1")
        rt.advance(0)
        inst.skip_wait()
        rt.advance(0)
        assert sorted(_shape(inst)) == [("sleep", "long", "waiting"), ("sleep", "short", "complete")]
        inst.skip_wait()
        rt.advance(0)
        assert inst.status().output == ["short", "long"]


def test_skip_refuses_what_has_no_deadline_or_is_not_waiting() -> None:
    with LocalRuntime(workflows=[event_only, chain]) as rt:
        inst = rt.client.create("skip-event", id="event-1")
        with pytest.raises(InvalidStateError, match="queued"):
            inst.skip_wait()  # not started yet: nothing to skip
        rt.advance(0)
        inst.skip_wait()  # a 365-day timeout is a deadline
        rt.advance(0)
        assert inst.status().error["name"] == "WorkflowTimeoutError"
        calls = rt.aws_calls["sqs.SendMessage"]
        with pytest.raises(InvalidStateError, match="errored"):
            inst.skip_wait()
        assert rt.aws_calls["sqs.SendMessage"] == calls  # a refused skip sends nothing
        waiting = rt.client.create("skip-event", id="event-2")
        rt.advance(0)
        waiting.send_event("go", 1)
        rt.advance(0)
        assert waiting.status().output == 1


def test_a_skip_survives_a_crash_of_the_invocation_that_applies_it() -> None:
    failures["flaky"] = 0
    with LocalRuntime(workflows=[chain]) as rt:
        inst = rt.client.create("skip-chain", id="chain-2")
        rt.advance(0)
        inst.skip_wait()
        rt.crash_at("instance.before_release", instance_id="chain-2")
        rt.advance(0)
        assert rt.crashes == 1
        assert _shape(inst)[1] == ("sleep", "nap", "waiting")  # the release never happened
        # The lease expires (300 s + 5 s), the sweeper wakes it, and the skip is applied again: long
        # before the 2-hour sleep would have ended.
        rt.advance("15 minutes")
        assert _shape(inst)[1:] == [("sleep", "nap", "complete"), ("wait", "approval", "waiting")]


def test_a_wait_scale_shortens_every_new_wait_and_nothing_else() -> None:
    failures["flaky"] = 1
    settings = Settings(wait_scale=1 / 3600)
    with LocalRuntime(workflows=[chain], settings=settings) as rt:
        inst = rt.client.create("skip-chain", id="chain-3")
        start = rt.clock.now()
        rt.run_until_idle()
        st = inst.status()
        assert (st.status, st.output) == ("complete", {"answer": "timed out", "charged": "charged"})
        # 2 h + 3 days + 1 h + 10 s of waits, scaled: 2 + 72 + 1 + 0.003 s, and the step's own time
        elapsed = rt.clock.now() - start
        assert 75 <= elapsed < 76, elapsed
        nap = next(e for e in inst.history() if e.name == "nap")
        assert nap.wake_at is not None and (nap.wake_at - nap.started_at).total_seconds() == pytest.approx(2)
    for bad in ("0", "1.5", "-1"):
        with pytest.raises(InvalidConfigError, match="WORKFLOWS_WAIT_SCALE"):
            Settings.from_env({"WORKFLOWS_WAIT_SCALE": bad})
