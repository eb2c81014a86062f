"""Saga rollbacks on the fakes: with_rollback / .undo / rollback_all in sync and async workflows, the
automatic rollback of a failed run, last-in-first-out order, failing undos, and a crash mid-rollback."""

from __future__ import annotations

from typing import Any

import pytest

from framework import StepFailedError, UndoFailedError
from framework.api.registry import Workflow
from framework.core.faults import injected
from framework.core.records import Status
from tests.unit.harness import Harness

DONE: list[str] = []


def _sync(fail_undo: str | None = None, *, explicit: bool = False, stop: bool = False) -> Workflow:
    def flow(event: Any, step: Any) -> Any:
        def booked(what: str) -> Any:
            @step.with_rollback(f"book {what}", undo_config={"retries": {"limit": 1, "delay": "1 second"}})
            def book() -> str:
                DONE.append(f"book {what}")
                return f"{what}-ref"

            @book.undo
            def cancel(err: Any, output: str) -> None:
                DONE.append(f"cancel {output} ({type(err).__name__})")
                if what == fail_undo:
                    raise ConnectionError("the provider is down")

            return book()

        refs = [booked("flight"), booked("hotel"), booked("car")]
        if explicit:
            try:
                step.do("pay", lambda: (_ for _ in ()).throw(ValueError("card declined")), config=NO_RETRY)
            except Exception as exc:
                failures = step.rollback_all(exc, stop_on_undo_failure=stop)
                return {
                    "failed undos": [[isinstance(f, StepFailedError), type(f).__name__] for f in failures]
                }
        step.do("pay", lambda: (_ for _ in ()).throw(ValueError("card declined")), config=NO_RETRY)
        return refs

    return Workflow(name="trip", fn=flow)


NO_RETRY = {"retries": {"limit": 0}}


def _async() -> Workflow:
    async def flow(event: Any, step: Any) -> Any:
        @step.with_rollback("charge card")
        async def charge() -> int:
            DONE.append("charge")
            return 30

        @charge.undo
        async def refund(err: Any, output: int) -> None:
            DONE.append(f"refund {output}")

        @step.with_rollback("reserve")
        def reserve() -> str:
            DONE.append("reserve")
            return "r-1"

        @reserve.undo
        def release(err: Any, output: str) -> None:
            DONE.append(f"release {output}")

        await charge()
        await reserve()
        await step.sleep("settle", "1 hour")
        raise ValueError("shipping refused")

    return Workflow(name="async-trip", fn=flow)


def test_a_failed_run_undoes_completed_steps_last_first_then_errors() -> None:
    DONE.clear()
    h = Harness(_sync())
    inst = h.start("trip")
    h.run_until_idle()
    status = inst.status()
    assert status.status is Status.ERRORED and "card declined" in status.error["message"]
    assert DONE[3:] == [
        "cancel car-ref (ValueError)",
        "cancel hotel-ref (ValueError)",
        "cancel flight-ref (ValueError)",
    ]
    names = [e.name for e in inst.history()]
    assert names[-3:] == ["book car (undo)", "book hotel (undo)", "book flight (undo)"]


def test_an_async_run_undoes_after_a_suspension_with_each_undo_once() -> None:
    DONE.clear()
    h = Harness(_async())
    inst = h.start("async-trip")
    h.run_until_idle()
    assert inst.status().status is Status.ERRORED
    assert DONE == ["charge", "reserve", "release r-1", "refund 30"]


def test_a_failing_undo_is_reported_and_the_others_still_run() -> None:
    DONE.clear()
    h = Harness(_sync(fail_undo="hotel", explicit=True))
    inst = h.start("trip")
    h.run_until_idle()
    # A failed undo is its step's StepFailedError, also an instance of the class it failed with.
    assert inst.status().output == {"failed undos": [[True, "ConnectionError"]]}
    cancels = [d for d in DONE if d.startswith("cancel")]
    assert cancels[0].startswith("cancel car-ref") and cancels[-1].startswith("cancel flight-ref")
    assert sum(c.startswith("cancel hotel-ref") for c in cancels) == 2  # its own retry: 1 more attempt
    undo = next(e for e in inst.history() if e.name == "book hotel (undo)")
    assert undo.status == "failed" and len(undo.attempts) == 2


def test_stop_on_undo_failure_stops_at_the_first_failed_undo() -> None:
    DONE.clear()
    h = Harness(_sync(fail_undo="car", explicit=True, stop=True))
    inst = h.start("trip")
    h.run_until_idle()
    assert inst.status().status is Status.ERRORED
    assert inst.status().error["name"] == UndoFailedError.__name__
    assert not any(d.startswith("cancel hotel") or d.startswith("cancel flight") for d in DONE)


class Crash(BaseException):
    """The process dies here."""


def test_a_crash_mid_rollback_resumes_without_running_recorded_undos_again() -> None:
    DONE.clear()
    h = Harness(_sync())
    inst = h.start("trip")
    writes = {"n": 0}

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "journal.after_write" and any(d.startswith("cancel hotel") for d in DONE):
            writes["n"] += 1
            if writes["n"] == 1:
                raise Crash

    with injected(die), pytest.raises(Crash):
        h.run_until_idle()
    h.advance("30 minutes")  # the lease expires; the sweeper wakes the instance
    assert inst.status().status is Status.ERRORED
    cancels = [d for d in DONE if d.startswith("cancel")]
    assert [c.split()[1] for c in cancels] == ["car-ref", "hotel-ref", "flight-ref"]


def test_with_rollback_checks_what_it_is_given() -> None:
    from framework import InvalidConfigError

    def flow(event: Any, step: Any) -> Any:
        try:
            step.with_rollback("x", config={"retries": {"limit": -1}})
        except InvalidConfigError:
            pass
        else:
            return "no error"
        step_fn = step.with_rollback("y")(lambda: 1)
        try:
            step_fn.undo(42)
        except InvalidConfigError as exc:
            return str(exc)
        return "no error"

    h = Harness(Workflow(name="checks", fn=flow))
    inst = h.start("checks")
    h.run_until_idle()
    assert "must be a callable" in inst.status().output
