"""Saga rollbacks on the fakes: with_rollback / .undo / rollback_all in sync and async workflows, the
automatic rollback of a failed run, last-in-first-out order, failing undos, and a crash mid-rollback."""

from __future__ import annotations

from typing import Any

import pytest

from framework import InvalidStateError, StepFailedError, UndoFailedError
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


SEEN: list[str] = []  # the instance's status, as the store holds it, when each undo runs


def _booking(harness: list[Harness], *, is_async: bool = False) -> Workflow:
    """One step with an undo, a second one without, then an hour's sleep (where a terminate lands)."""

    def undo(err: Any, output: str) -> None:
        record = harness[0].store.inner.get_instance(harness[0].client_ids[0])
        SEEN.append(record.status.value)
        DONE.append(f"cancel {output} ({type(err).__name__})")

    if is_async:

        async def aflow(event: Any, step: Any) -> Any:
            @step.with_rollback("book")
            async def book() -> str:
                DONE.append("book")
                return "b-1"

            book.undo(undo)
            await book()
            await step.do("note", lambda: DONE.append("note"))
            await step.sleep("settle", "1 hour")
            return "done"

        return Workflow(name="booking", fn=aflow)

    def flow(event: Any, step: Any) -> Any:
        @step.with_rollback("book")
        def book() -> str:
            DONE.append("book")
            return "b-1"

        book.undo(undo)
        book()
        step.do("note", lambda: DONE.append("note"))
        step.sleep("settle", "1 hour")
        return "done"

    return Workflow(name="booking", fn=flow)


def _harness(*, is_async: bool = False) -> tuple[Harness, Any]:
    holder: list[Harness] = []
    h = Harness(_booking(holder, is_async=is_async))
    holder.append(h)
    inst = h.start("booking")
    h.client_ids = [inst.id]  # type: ignore[attr-defined]
    return h, inst


def test_the_instance_shows_rolling_back_while_its_undos_run() -> None:
    DONE.clear(), SEEN.clear()
    h = Harness(_sync())
    inst = h.start("trip")
    seen: list[Status] = []
    original = h.store.inner.mark_rolling_back

    def spy(instance_id: str, owner: str) -> None:
        original(instance_id, owner)
        seen.append(h.store.inner.get_instance(instance_id).status)

    h.store.inner.mark_rolling_back = spy
    h.run_until_idle()
    assert seen == [Status.ROLLING_BACK]  # written once, as the rollback starts
    assert inst.status().status is Status.ERRORED


@pytest.mark.parametrize("is_async", [False, True])
def test_terminate_with_rollback_runs_the_undos_then_terminates(is_async: bool) -> None:
    DONE.clear(), SEEN.clear()
    h, inst = _harness(is_async=is_async)
    h.advance("1 minute")
    assert DONE == ["book", "note"] and inst.status().status is Status.WAITING
    inst.terminate(rollback=True)
    h.advance("1 minute")
    assert inst.status().status is Status.TERMINATED
    assert DONE == ["book", "note", "cancel b-1 (RollbackRequested)"]  # the recorded steps not run again
    assert SEEN == ["rollingBack"]
    undo = [e for e in inst.history() if e.name == "book (undo)"]
    assert len(undo) == 1 and undo[0].status == "complete"
    h.advance("2 hours")  # the sleep's old wake-up finds it terminated
    assert len(DONE) == 3 and inst.status().status is Status.TERMINATED


def test_terminate_with_rollback_of_a_paused_instance_and_of_one_with_nothing_to_undo() -> None:
    DONE.clear(), SEEN.clear()
    h, inst = _harness()
    h.advance("1 minute")
    inst.pause()
    inst.terminate(rollback=True)
    h.advance("1 minute")
    assert inst.status().status is Status.TERMINATED and DONE[-1] == "cancel b-1 (RollbackRequested)"
    fresh = h.start("booking")  # not run yet: nothing to undo
    fresh.terminate(rollback=True)
    h.advance("1 minute")
    assert fresh.status().status is Status.TERMINATED and DONE.count("book") == 1
    with pytest.raises(InvalidStateError):
        fresh.terminate(rollback=True)


def test_a_crash_mid_rollback_of_a_terminate_resumes_and_ends_terminated() -> None:
    DONE.clear(), SEEN.clear()
    h, inst = _harness()
    h.advance("1 minute")
    inst.terminate(rollback=True)

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "journal.after_write" and info["name"] == "book (undo)" and info["status"] == "complete":
            raise Crash

    with injected(die), pytest.raises(Crash):
        h.advance("1 minute")
    assert inst.status().status is Status.ROLLING_BACK
    h.advance("30 minutes")
    assert inst.status().status is Status.TERMINATED
    assert DONE.count("cancel b-1 (RollbackRequested)") == 1  # recorded: not run again


def _docs_example() -> dict[str, Any]:
    import re
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "execution-model.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL) if "with_rollback" in b]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/execution-model.md", "exec"), namespace)
    return namespace


def test_the_docs_example_undoes_on_failure_and_on_terminate_with_rollback() -> None:
    docs = _docs_example()
    h = Harness(docs["checkout"])
    failed = h.start("checkout", {"out_of_stock": True})
    h.run_until_idle()
    assert failed.status().status is Status.ERRORED and docs["CHARGED"] == []
    shipping = h.start("checkout", {})
    h.advance("1 minute")
    assert docs["CHARGED"] == ["ch-1"]
    shipping.terminate(rollback=True)
    h.advance("1 minute")
    assert shipping.status().status is Status.TERMINATED and docs["CHARGED"] == []
    assert [e.name for e in shipping.history()] == ["charge card", "ship", "charge card (undo)"]


def test_the_error_of_a_failed_run_names_the_undos_that_failed() -> None:
    DONE.clear()
    h = Harness(_sync(fail_undo="hotel"))
    inst = h.start("trip")
    h.run_until_idle()
    error = inst.status().error
    assert error["name"] == "StepFailedError" and "card declined" in error["message"]
    assert error["message"].endswith("(undos failed during the rollback: 'book hotel (undo)')")
    assert DONE[-1].startswith("cancel flight-ref")  # the others still ran


def test_a_terminate_with_rollback_whose_undo_fails_ends_terminated_and_says_so() -> None:
    def flow(event: Any, step: Any) -> Any:
        @step.with_rollback("book", undo_config={"retries": {"limit": 0}})
        def book() -> str:
            return "b-1"

        @book.undo
        def cancel(err: Any, output: str) -> None:
            raise ConnectionError("the provider is down")

        book()
        step.sleep("settle", "1 hour")

    h = Harness(Workflow(name="doomed", fn=flow))
    inst = h.start("doomed")
    h.advance("1 minute")
    inst.terminate(rollback=True)
    h.advance("1 minute")
    status = inst.status()
    assert status.status is Status.TERMINATED
    assert status.error == {
        "name": "UndoFailedError",
        "message": "undos failed during the rollback: 'book (undo)'",
    }
    assert [e.status for e in inst.history()][-1] == "failed"
