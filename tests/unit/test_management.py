"""Events, pause, resume, terminate, restart, listing and batches, on the in-memory store."""

from __future__ import annotations

from typing import Any

import pytest

from framework import (
    InstanceAlreadyExistsError,
    InstanceNotFoundError,
    InvalidConfigError,
    InvalidParamsError,
    InvalidStateError,
    Workflow,
    WorkflowTimeoutError,
)
from framework.backends.environment import Settings
from tests.unit.harness import Harness

CHECK_ALWAYS = Settings(control_check_seconds=0)


def approval(event: Any, step: Any) -> Any:
    step.do("ask", lambda: "asked")
    try:
        decision = step.wait_for_event("approval", "approved", timeout="1 day")
    except WorkflowTimeoutError as exc:
        return {"escalated": str(exc)}
    return {"by": decision.payload["by"], "type": decision.type, "at": decision.timestamp.timestamp()}


def two_waits(event: Any, step: Any) -> Any:
    first = step.wait_for_event("first", "vote")
    second = step.wait_for_event("second", "vote")
    return [first.payload, second.payload]


def sleeper(event: Any, step: Any) -> Any:
    step.do("a", lambda: 1)
    step.sleep("nap", "1 hour")
    return step.do("b", lambda: 2)


WFS = [Workflow("approval", approval), Workflow("two-waits", two_waits), Workflow("sleeper", sleeper)]


@pytest.fixture
def h() -> Harness:
    return Harness(*WFS, settings=CHECK_ALWAYS)


def test_event_wakes_a_waiting_instance_at_once(h: Harness) -> None:
    inst = h.start("approval")
    h.run_due()
    assert inst.status().status == "waiting"
    h.clock.advance(60)
    inst.send_event("approved", {"by": "ana"})
    h.run_due()  # no clock movement needed
    out = inst.status().output
    assert out["by"] == "ana" and out["type"] == "approved"
    assert out["at"] == pytest.approx(h.clock.now())
    kinds = [(e.kind, e.name, e.status) for e in inst.history()]
    assert kinds == [
        ("step", "ask", "complete"),
        ("wait", "approval", "complete"),
        ("event", "approved", "consumed"),
    ]
    wait = inst.history()[1]
    assert wait.event_type == "approved" and wait.payload == {"by": "ana"}


def test_event_sent_before_the_wait_is_buffered(h: Harness) -> None:
    inst = h.start("approval")
    inst.send_event("approved", {"by": "early"})
    assert [e.status for e in inst.history() if e.kind == "event"] == ["buffered"]
    h.run_until_idle()
    assert inst.status().output["by"] == "early"


def test_two_events_of_one_type_feed_two_waits_in_order(h: Harness) -> None:
    inst = h.start("two-waits")
    inst.send_event("vote", 1)
    h.clock.advance(1)
    inst.send_event("vote", 2)
    h.run_until_idle()
    assert inst.status().output == [1, 2]


def test_timeout_raises_catchable_error_and_later_events_are_buffered(h: Harness) -> None:
    inst = h.start("approval")
    h.run_due()
    h.advance("1 day")
    out = inst.status().output
    assert "timed out" in out["escalated"] and "'approved'" in out["escalated"]
    with pytest.raises(InvalidStateError):
        inst.send_event("approved", {"by": "late"})  # the instance completed


def test_event_after_a_timeout_is_kept_for_a_later_wait() -> None:
    def flow(event: Any, step: Any) -> Any:
        try:
            step.wait_for_event("first", "go", timeout="1 minute")
        except WorkflowTimeoutError:
            pass
        step.sleep("nap", "1 hour")
        return step.wait_for_event("second", "go", timeout="1 minute").payload

    h = Harness(Workflow("late", flow), settings=CHECK_ALWAYS)
    inst = h.start("late")
    h.run_due()
    h.advance("2 minutes")  # the first wait times out
    inst.send_event("go", "late but kept")
    h.run_until_idle()
    assert inst.status().output == "late but kept"


def test_events_to_finished_or_missing_instances_are_refused(h: Harness) -> None:
    inst = h.start("sleeper")
    h.run_until_idle()
    with pytest.raises(InvalidStateError):
        inst.send_event("x")
    with pytest.raises(InstanceNotFoundError):
        h.client.get("nobody")
    missing = type(inst)(h.client, "nobody")
    with pytest.raises(InstanceNotFoundError):
        missing.send_event("x")
    with pytest.raises(InvalidConfigError):
        inst.send_event("bad type!")


def test_pause_during_a_sleep_holds_the_wake_up_until_resume(h: Harness) -> None:
    inst = h.start("sleeper")
    h.run_due()
    inst.pause()
    assert inst.status().status == "paused"
    h.advance("2 hours")
    assert inst.status().status == "paused"  # the wake-up came and did nothing
    inst.resume()
    h.run_until_idle()
    assert inst.status().output == 2
    with pytest.raises(InvalidStateError):
        inst.resume()  # not paused


def test_pause_during_a_step_takes_effect_at_the_next_boundary() -> None:
    def flow(event: Any, step: Any) -> Any:
        def pause_me() -> str:
            handle = h.client.get(event.instance_id)
            handle.pause()
            return str(handle.status().status)

        seen = step.do("pause me", pause_me)
        return step.do("after", lambda: f"done; status during the step: {seen}")

    h = Harness(Workflow("pause-step", flow), settings=CHECK_ALWAYS)
    inst = h.start("pause-step")
    h.run_due()
    assert inst.status().status == "paused"
    assert [e.name for e in inst.history()] == ["pause me"]
    inst.resume()
    h.run_until_idle()
    assert inst.status().output == "done; status during the step: waitingForPause"


def test_resume_cancels_a_pending_pause(h: Harness) -> None:
    def flow(event: Any, step: Any) -> Any:
        handle = h.client.get(event.instance_id)

        def pause_then_resume() -> None:
            handle.pause()
            handle.resume()

        step.do("pause then resume", pause_then_resume)
        return step.do("after", lambda: "never paused")

    h2 = Harness(Workflow("pause-resume", flow), settings=CHECK_ALWAYS)
    h = h2
    inst = h2.start("pause-resume")
    h2.run_due()
    assert inst.status().output == "never paused"


def test_terminate_while_waiting_makes_later_wake_ups_do_nothing(h: Harness) -> None:
    inst = h.start("approval")
    h.run_due()
    inst.terminate()
    assert inst.status().status == "terminated"
    h.advance("2 days")
    assert inst.status().status == "terminated"
    with pytest.raises(InvalidStateError):
        inst.terminate()
    with pytest.raises(InvalidStateError):
        inst.send_event("approved", {})
    with pytest.raises(InvalidStateError):
        inst.pause()


def test_terminate_during_a_step_stops_at_the_next_boundary() -> None:
    ran: list[str] = []

    def flow(event: Any, step: Any) -> Any:
        step.do("terminate me", lambda: h.client.get(event.instance_id).terminate())
        step.do("never", lambda: ran.append("never"))

    h = Harness(Workflow("term-step", flow), settings=CHECK_ALWAYS)
    inst = h.start("term-step")
    h.run_until_idle()
    assert inst.status().status == "terminated"
    assert ran == []


def test_restart_of_an_errored_instance_runs_from_the_beginning() -> None:
    attempts = {"n": 0}

    def flow(event: Any, step: Any) -> Any:
        attempts["n"] += 1
        first = step.do("first", lambda: attempts["n"])
        if attempts["n"] == 1:
            raise RuntimeError("first run fails")
        return {"first": first, "params": event.payload}

    h = Harness(Workflow("restartable", flow), settings=CHECK_ALWAYS)
    inst = h.start("restartable", {"k": 1})
    h.run_until_idle()
    assert inst.status().status == "errored"
    inst.restart()
    assert inst.status().status == "queued"
    h.run_until_idle()
    st = inst.status()
    assert st.status == "complete" and st.error is None
    assert st.output == {"first": 2, "params": {"k": 1}}  # a fresh journal: "first" ran again
    assert len(inst.history()) == 1


def test_list_filters_and_pages(h: Harness) -> None:
    for i in range(5):
        h.start("sleeper", id=f"s{i}")
        h.clock.advance(1)
    h.start("approval", id="a0")
    h.run_due()
    page = h.client.list(workflow="sleeper", limit=2)
    assert [i.id for i in page.instances] == ["s4", "s3"]
    page2 = h.client.list(workflow="sleeper", limit=2, cursor=page.cursor)
    assert [i.id for i in page2.instances] == ["s2", "s1"]
    page3 = h.client.list(workflow="sleeper", limit=2, cursor=page2.cursor)
    assert [i.id for i in page3.instances] == ["s0"] and page3.cursor is None
    assert [i.id for i in h.client.list(status="waiting").instances] == ["a0", "s4", "s3", "s2", "s1", "s0"]
    assert h.client.list(status="complete").instances == []
    import base64

    nan_cursor = base64.urlsafe_b64encode(b'[NaN, "a"]').decode()
    huge_cursor = base64.urlsafe_b64encode(b'[1e999, "a"]').decode()
    bad_args = [{"limit": 0}, {"limit": 1001}, {"status": "sleeping"}, {"cursor": "garbage!"}]
    for bad in [*bad_args, {"cursor": nan_cursor}, {"cursor": huge_cursor}]:
        with pytest.raises(InvalidConfigError):
            h.client.list(**bad)  # type: ignore[arg-type]


def test_create_batch_is_all_or_nothing(h: Harness) -> None:
    made = h.client.create_batch("sleeper", [{"id": "b1"}, {"id": "b2", "params": {"x": 1}}, {}])
    assert [m.id for m in made][:2] == ["b1", "b2"] and len(made) == 3
    with pytest.raises(InstanceAlreadyExistsError, match="b1"):
        h.client.create_batch("sleeper", [{"id": "b9"}, {"id": "b1", "params": {"x": 2}}])
    with pytest.raises(InstanceNotFoundError):
        h.client.get("b9")  # nothing of the failed batch was written
    with pytest.raises(InstanceAlreadyExistsError):
        h.client.create_batch("sleeper", [{"id": "dup"}, {"id": "dup"}])
    with pytest.raises(InvalidConfigError):
        h.client.create_batch("sleeper", [{}] * 101)
    with pytest.raises(InvalidConfigError):
        h.client.create_batch("sleeper", [{"idd": "typo"}])
    with pytest.raises(InvalidParamsError):
        h.client.create_batch("sleeper", [{"params": [1]}])
    h.run_until_idle()
    assert all(m.status().status == "complete" for m in made)


def test_an_event_sent_while_paused_is_taken_at_resume(h: Harness) -> None:
    inst = h.start("approval")
    h.run_due()
    inst.pause()
    inst.send_event("approved", {"by": "while paused"})
    h.run_due()
    assert inst.status().status == "paused"
    inst.resume()
    h.run_due()  # at once, not at the wait's deadline
    assert inst.status().output["by"] == "while paused"


def test_a_batch_too_big_for_one_transaction_is_refused(h: Harness) -> None:
    from framework import PayloadTooLargeError

    with pytest.raises(PayloadTooLargeError):
        h.client.create_batch("sleeper", [{"params": {"blob": "x" * 200_000}}] * 20)
