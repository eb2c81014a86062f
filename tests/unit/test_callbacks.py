"""Durable callbacks on the fakes: create_callback / wait_for_callback in sync and async workflows, the
id a replay hands out again, sends twice, forged and stale ids, restarts, heartbeats and timeouts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import pytest

from framework import (
    CallbackCompletedError,
    CallbackFailedError,
    CallbackNotFoundError,
    InvalidConfigError,
    PayloadTooLargeError,
    SerializationError,
    WorkflowTimeoutError,
)
from framework.api.registry import Workflow
from framework.backends.store import full_journal
from framework.core.callbacks import CallbackId, parse_callback_id
from framework.core.records import EntryKind, EntryStatus
from tests.unit.harness import Harness

ISSUED: dict[str, list[str]] = {}


def wf(name: str) -> Any:
    def register(fn: Any) -> Workflow:
        return Workflow(name=name, fn=fn)

    return register


def _sync_flow(name: str, **kwargs: Any) -> Workflow:
    @wf(name)
    def flow(event: Any, step: Any) -> Any:
        cb = step.create_callback("payment", **kwargs)
        ISSUED.setdefault(name, []).append(cb.id)
        step.do("ask provider", lambda: None)
        try:
            return {"paid": cb.result()}
        except CallbackFailedError as e:
            return {"failed": [e.error_type, e.error_message], "text": str(e)}
        except WorkflowTimeoutError as e:
            return {"timed_out": str(e)}

    return flow


def _async_flow(name: str, **kwargs: Any) -> Workflow:
    @wf(name)
    async def flow(event: Any, step: Any) -> Any:
        cb = await step.create_callback("payment", **kwargs)
        ISSUED.setdefault(name, []).append(cb.id)
        await step.do("ask provider", lambda: None)
        try:
            return {"paid": await cb.result()}
        except CallbackFailedError as e:
            return {"failed": [e.error_type, e.error_message], "text": str(e)}
        except WorkflowTimeoutError as e:
            return {"timed_out": str(e)}

    return flow


FLOWS = [_sync_flow, _async_flow]


def started(make: Any, name: str, **kwargs: Any) -> tuple[Harness, Any, str]:
    ISSUED.pop(name, None)
    h = Harness(make(name, **kwargs))
    inst = h.start(name)
    h.advance(0)
    assert inst.status().status == "waiting"
    return h, inst, ISSUED[name][-1]


@pytest.mark.parametrize("make", FLOWS)
def test_a_result_sent_completes_the_wait_and_the_replay_gives_the_same_id(make: Any) -> None:
    h, inst, cid = started(make, f"cb-ok-{make.__name__}")
    parsed = parse_callback_id(cid)
    assert (parsed.instance_id, parsed.run, parsed.seq) == (inst.id, 1, 0) and len(parsed.token) == 22
    h.client.send_callback_success(cid, {"amount": 12.5})
    h.advance(0)
    assert inst.status().output == {"paid": {"amount": 12.5}}
    # Every replay (the first run, the wake-up) handed out one id.
    assert set(ISSUED[f"cb-ok-{make.__name__}"]) == {cid} and len(ISSUED[f"cb-ok-{make.__name__}"]) == 2
    entry = full_journal(h.store, inst.id, 1)[0]
    assert entry.kind is EntryKind.CALLBACK and entry.status is EntryStatus.COMPLETE


@pytest.mark.parametrize("make", FLOWS)
def test_a_failure_sent_raises_callback_failed_without_the_senders_text(make: Any) -> None:
    h, inst, cid = started(make, f"cb-fail-{make.__name__}")
    h.client.send_callback_failure(cid, "CardDeclined", "secret-ish detail")
    h.advance(0)
    out = inst.status().output
    assert out["failed"] == ["CardDeclined", "secret-ish detail"]
    assert "CardDeclined" not in out["text"] and "secret" not in out["text"]


@pytest.mark.parametrize("make", FLOWS)
def test_a_second_outcome_is_refused_and_the_first_one_counts(make: Any) -> None:
    h, inst, cid = started(make, f"cb-twice-{make.__name__}")
    h.client.send_callback_success(cid, 1)
    with pytest.raises(CallbackCompletedError, match="already"):
        h.client.send_callback_success(cid, 2)  # before the instance ran: the event is there
    with pytest.raises(CallbackCompletedError):
        h.client.send_callback_failure(cid, "Late")
    h.advance(0)
    assert inst.status().output == {"paid": 1}
    with pytest.raises(CallbackCompletedError):
        h.client.send_callback_success(cid, 3)  # after: the instance is complete


def test_a_second_outcome_after_the_wait_took_the_first_is_refused() -> None:
    @wf("cb-taken")
    def flow(event: Any, step: Any) -> Any:
        cb = step.create_callback("payment")
        first = cb.result()
        step.sleep("later", "1 hour")
        return first

    h = Harness(flow)
    inst = h.start("cb-taken")
    h.advance(0)
    cid = str(CallbackId(inst.id, 1, 0, full_journal(h.store, inst.id, 1)[0].extra["token"]))
    h.client.send_callback_success(cid, "first")
    h.advance(0)  # took it, and is asleep: its outcome event is deleted
    assert inst.status().status == "waiting"
    with pytest.raises(CallbackCompletedError, match="complete already"):
        h.client.send_callback_success(cid, "second")
    h.advance("1 hour")
    assert inst.status().output == "first"


@pytest.mark.parametrize("make", FLOWS)
def test_forged_and_malformed_ids_are_not_found_and_store_nothing(make: Any) -> None:
    h, inst, cid = started(make, f"cb-forged-{make.__name__}")
    parsed = parse_callback_id(cid)
    token = parsed.token
    other_token = ("A" if token[0] != "A" else "B") + token[1:]
    forged = [
        str(CallbackId(inst.id, 1, 0, other_token)),  # a guessed token
        str(CallbackId(inst.id, 1, 1, token)),  # the step's entry, not a callback
        str(CallbackId(inst.id, 1, 7, token)),  # no entry there
        str(CallbackId("no-such", 1, 0, token)),
    ]
    malformed = ["", "x", cid + ".", cid[:-1], cid.replace(".", "..", 1), "a" * 10_000, None, 5]
    encoded = base64.urlsafe_b64encode(b"bad id!").decode().rstrip("=")
    malformed.append(f"{encoded}.1.0.{token}")  # decodes to no valid instance id
    for bad in forged + malformed:
        for send in (
            lambda i: h.client.send_callback_success(i, 1),
            lambda i: h.client.send_callback_failure(i, "E"),
            h.client.send_callback_heartbeat,
        ):
            with pytest.raises(CallbackNotFoundError) as info:
                send(bad)
            assert token not in str(info.value)  # an id is a secret: never echoed
    record = h.store.get_instance(inst.id)
    assert h.store.load_events(inst.id, record.run_key) == []
    assert h.queue.next_due() is None  # and no wake-up was sent


@pytest.mark.parametrize("make", FLOWS)
def test_a_restart_makes_the_old_id_invalid(make: Any) -> None:
    name = f"cb-restart-{make.__name__}"
    h, inst, old = started(make, name)
    inst.restart()
    h.advance(0)
    new = ISSUED[name][-1]
    assert new != old and parse_callback_id(new).run == 2
    with pytest.raises(CallbackNotFoundError, match="run 1"):
        h.client.send_callback_success(old, "stale")
    h.client.send_callback_success(new, "fresh")
    h.advance(0)
    assert inst.status().output == {"paid": "fresh"}


@pytest.mark.parametrize("make", FLOWS)
def test_the_timeout_fails_the_wait(make: Any) -> None:
    h, inst, cid = started(make, f"cb-timeout-{make.__name__}", timeout="1 hour")
    h.advance("59 minutes")
    assert inst.status().status == "waiting"
    h.advance("2 minutes")
    assert inst.status().output == {"timed_out": "callback 'payment' timed out after 3600 s"}
    with pytest.raises(CallbackCompletedError):
        h.client.send_callback_success(cid, "late")
    entry = full_journal(h.store, inst.id, 1)[0]
    assert entry.status is EntryStatus.TIMED_OUT and entry.extra["timed_out"] == "timeout"


@pytest.mark.parametrize("make", FLOWS)
def test_heartbeats_extend_the_deadline_and_a_missed_one_times_out(make: Any) -> None:
    h, inst, cid = started(make, f"cb-beat-{make.__name__}", timeout="1 day", heartbeat_timeout="5 minutes")
    for _ in range(3):  # 12 minutes in all, alive thanks to heartbeats every 4 minutes
        h.advance("4 minutes")
        h.client.send_callback_heartbeat(cid)
        h.client.send_callback_heartbeat(cid)  # twice at once: applied once
    assert inst.status().status == "waiting"
    record = h.store.get_instance(inst.id)
    beats = [e for e in h.store.load_events(inst.id, record.run_key) if e.type == "$heartbeat"]
    assert len(beats) == 1 and beats[0].sent_at == h.clock.now()
    h.advance("4 minutes")
    assert inst.status().status == "waiting"  # 4 minutes after the last heartbeat
    h.advance("2 minutes")
    out = inst.status().output
    assert out == {"timed_out": "callback 'payment' timed out: no heartbeat for 300 s"}
    assert full_journal(h.store, inst.id, 1)[0].extra["timed_out"] == "heartbeat"


def test_a_heartbeat_wakes_nothing() -> None:
    h, _inst, cid = started(_sync_flow, "cb-beat-quiet", heartbeat_timeout="1 hour")
    due = h.queue.next_due()
    h.client.send_callback_heartbeat(cid)
    assert h.queue.next_due() == due


def test_the_overall_timeout_wins_over_heartbeats() -> None:
    h, inst, cid = started(_sync_flow, "cb-beat-cap", timeout="10 minutes", heartbeat_timeout="5 minutes")
    for _ in range(3):
        h.advance("4 minutes")
        if inst.status().status == "waiting":
            h.client.send_callback_heartbeat(cid)
    h.advance("1 minute")
    assert inst.status().output == {"timed_out": "callback 'payment' timed out after 600 s"}


@pytest.mark.parametrize("is_async", [False, True])
def test_wait_for_callback_runs_submit_once_as_a_step(is_async: bool) -> None:
    submitted: list[tuple[str, int]] = []

    def submit(callback_id: str, ctx: Any) -> None:
        submitted.append((callback_id, ctx.attempt))

    if is_async:

        @wf("cb-wait-async")
        async def flow(event: Any, step: Any) -> Any:
            paid = await step.wait_for_callback("payment", submit, timeout="1 hour")
            await step.sleep("after", "1 minute")
            return paid

    else:

        @wf("cb-wait-sync")
        def flow(event: Any, step: Any) -> Any:
            paid = step.wait_for_callback("payment", submit, timeout="1 hour")
            step.sleep("after", "1 minute")
            return paid

    h = Harness(flow)
    inst = h.start(flow.name)
    h.advance(0)
    assert len(submitted) == 1 and submitted[0][1] == 1
    h.client.send_callback_success(submitted[0][0], "ok")
    h.advance("2 minutes")
    assert inst.status().output == "ok" and len(submitted) == 1
    kinds = [(e.kind.value, e.name) for e in full_journal(h.store, inst.id, 1)]
    assert kinds == [("callback", "payment"), ("step", "payment submit"), ("sleep", "after")]


def test_wait_for_callback_takes_a_submit_of_one_parameter_and_callbacks_run_concurrently() -> None:
    ids: dict[str, str] = {}

    @wf("cb-gather")
    async def flow(event: Any, step: Any) -> Any:
        def submit_to(name: str) -> Any:
            return lambda callback_id: ids.__setitem__(name, callback_id)

        return await asyncio.gather(
            step.wait_for_callback("a", submit_to("a")), step.wait_for_callback("b", submit_to("b"))
        )

    h = Harness(flow)
    inst = h.start("cb-gather")
    h.advance(0)
    h.client.send_callback_success(ids["b"], "B")
    h.advance(0)
    assert inst.status().status == "waiting"
    h.client.send_callback_success(ids["a"], "A")
    h.advance(0)
    assert inst.status().output == ["A", "B"]


def test_a_submit_is_given_the_context_as_its_positional_parameters_take_it() -> None:
    """Counted as every other function of workflow code is (``positional_count``): keyword-only
    parameters take no context, ``*args`` takes it."""
    got: dict[str, Any] = {}

    def keyword_only(callback_id: str, *, note: str = "n") -> None:
        got["keyword_only"] = note

    def star(*args: Any) -> None:
        got["star"] = [type(a).__name__ for a in args]

    @wf("cb-submit-params")
    def flow(event: Any, step: Any) -> Any:
        for name, submit in (("k", keyword_only), ("s", star)):
            with contextlib.suppress(WorkflowTimeoutError):  # no one answers
                step.wait_for_callback(name, submit, timeout="1 second")

    h = Harness(flow)
    h.start("cb-submit-params")
    h.run_until_idle()
    assert got == {"keyword_only": "n", "star": ["str", "StepContext"]}


def test_result_checks_as_for_event_payloads() -> None:
    h, inst, cid = started(_sync_flow, "cb-checks")
    with pytest.raises(SerializationError):
        h.client.send_callback_success(cid, {"x": float("nan")})
    with pytest.raises(PayloadTooLargeError):
        h.client.send_callback_success(cid, "x" * (256 * 1024))
    with pytest.raises(InvalidConfigError):
        h.client.send_callback_failure(cid, "")
    with pytest.raises(InvalidConfigError):
        h.client.send_callback_failure(cid, "E", "m" * 5000)
    h.client.send_callback_success(cid, "x" * (256 * 1024 - 2))  # its JSON is exactly the limit
    h.advance(0)
    assert inst.status().output == {"paid": "x" * (256 * 1024 - 2)}


def test_bad_durations_and_names_are_invalid_config() -> None:
    @wf("cb-config")
    def flow(event: Any, step: Any) -> Any:
        for kwargs in ({"timeout": "soon"}, {"heartbeat_timeout": 0}, {"heartbeat_timeout": "x"}):
            try:
                step.create_callback("c", **kwargs)
            except InvalidConfigError:
                continue
            return "accepted"
        try:
            step.wait_for_callback("w", "not callable")
        except InvalidConfigError:
            return "rejected"
        return "accepted"

    h = Harness(flow)
    inst = h.start("cb-config")
    h.advance(0)
    assert inst.status().output == "rejected"


def test_history_shows_the_callback() -> None:
    h, inst, cid = started(_sync_flow, "cb-history")
    entries = [e.as_dict() for e in inst.history()]
    assert entries[0]["kind"] == "callback" and entries[0]["status"] == "waiting"
    h.client.send_callback_success(cid, {"ok": True})
    h.advance(0)
    entries = [e.as_dict() for e in inst.history()]
    assert [e["kind"] for e in entries] == ["callback", "step"]  # the outcome is no event row
    assert entries[0]["status"] == "complete" and entries[0]["result"] == {"ok": True}
    assert entries[0]["error"] is None and entries[0]["wake_at"] is not None


def test_history_shows_a_failed_callback() -> None:
    h, inst, cid = started(_sync_flow, "cb-history-failed")
    h.client.send_callback_failure(cid, "Declined", "no funds")
    h.advance(0)
    entry = inst.history()[0].as_dict()
    assert entry["status"] == "failed" and entry["error"] == {"name": "Declined", "message": "no funds"}


def test_callback_repr_hides_the_id() -> None:
    seen: list[str] = []

    @wf("cb-repr")
    def flow(event: Any, step: Any) -> Any:
        cb = step.create_callback("c", timeout=0)
        seen.append(repr(cb))
        seen.append(cb.id)
        return None

    h = Harness(flow)
    h.start("cb-repr")
    h.advance(0)
    assert seen[0] == "Callback(name='c')" and seen[1] not in seen[0]


def test_the_timeline_shows_callbacks() -> None:
    from framework.manage.timeline import format_timeline

    h, inst, cid = started(_sync_flow, "cb-timeline")
    h.client.send_callback_failure(cid, "Declined", "no funds")
    h.advance(0)
    text = format_timeline(inst.status(), inst.history())
    assert "callback 'payment': failed" in text and 'failure sent: Declined: "no funds"' in text


# -- a result sent at the moment the timeout passes: the wait ends once, with one of the two ----------
def _at_the_deadline(make: Any, name: str) -> tuple[Harness, Any, str]:
    h, inst, cid = started(make, name, timeout="1 hour")
    entry = full_journal(h.store, inst.id, 1)[0]
    assert entry.wake_at is not None
    h.clock.set(entry.wake_at)  # the wake-up for the timeout is due now, and not delivered yet
    return h, inst, cid


def _one_outcome(h: Harness, inst: Any) -> EntryStatus:
    """The callback's one entry, finished, its status the only outcome history shows."""
    entries = [e for e in full_journal(h.store, inst.id, 1) if e.kind is EntryKind.CALLBACK]
    assert len(entries) == 1 and entries[0].status is not EntryStatus.WAITING
    rows = [e.as_dict() for e in inst.history() if e.kind in ("callback", "event")]
    assert [r["kind"] for r in rows] == ["callback"]
    return entries[0].status


@pytest.mark.parametrize("make", FLOWS)
def test_a_result_sent_at_the_deadline_before_the_wake_up_counts(make: Any) -> None:
    h, inst, cid = _at_the_deadline(make, f"cb-edge-{make.__name__}")
    h.client.send_callback_success(cid, "just in time")
    h.run_until_idle()
    assert inst.status().output == {"paid": "just in time"}
    assert _one_outcome(h, inst) is EntryStatus.COMPLETE


@pytest.mark.parametrize("make", FLOWS)
def test_a_result_sent_at_the_deadline_after_the_timeout_was_recorded_is_refused(make: Any) -> None:
    from framework.engine.sweeper import sweep

    h, inst, cid = _at_the_deadline(make, f"cb-late-{make.__name__}")
    sweep(h.env)  # the wait is parked (over one SQS delay): the sweeper sends its wake-up
    h.run_due()  # which records the timeout, at the deadline
    with pytest.raises(CallbackCompletedError):
        h.client.send_callback_success(cid, "too late")
    h.run_until_idle()
    assert inst.status().output == {"timed_out": "callback 'payment' timed out after 3600 s"}
    assert _one_outcome(h, inst) is EntryStatus.TIMED_OUT
    record = h.store.get_instance(inst.id)
    assert [e.type for e in h.store.load_events(inst.id, record.run_key)] == []  # nothing stored


@pytest.mark.parametrize("make", FLOWS)
def test_a_result_stored_while_the_worker_writes_the_timeout_still_counts(make: Any) -> None:
    """The worker has read the callback's outcomes (none) and found the deadline passed; the send lands
    before its timeout is written. The send was accepted, so its result counts (execution-model.md:
    an outcome stored before the engine recorded the timeout still counts)."""
    from framework.core.faults import injected

    h, inst, cid = _at_the_deadline(make, f"cb-race-{make.__name__}")
    sent = []

    def send_first(where: str, info: dict[str, Any]) -> None:
        if where == "journal.before_write" and info.get("status") is EntryStatus.TIMED_OUT and not sent:
            h.client.send_callback_success(cid, "raced")  # accepted: the entry still waits
            sent.append(True)

    with injected(send_first):
        h.run_until_idle()
    assert sent
    assert inst.status().output == {"paid": "raced"}
    assert _one_outcome(h, inst) is EntryStatus.COMPLETE


class Crash(BaseException):
    """The invocation's process dies here."""


@pytest.mark.parametrize("send", [True, False], ids=["sent", "not-sent"])
def test_a_crash_after_the_timeouts_first_write_settles_it_on_replay(send: bool) -> None:
    from framework.core.faults import injected

    h, inst, cid = _at_the_deadline(_sync_flow, f"cb-crash-{send}")

    def die(where: str, info: dict[str, Any]) -> None:
        if info.get("status") is not EntryStatus.TIMED_OUT:
            return
        if where == "journal.before_write" and send:
            h.client.send_callback_success(cid, "raced")
        if where == "journal.after_write":
            raise Crash

    with injected(die), pytest.raises(Crash):
        h.run_until_idle()
    assert full_journal(h.store, inst.id, 1)[0].status is EntryStatus.TIMED_OUT  # refuses sends now
    with pytest.raises(CallbackCompletedError):
        h.client.send_callback_success(cid, "after the write")
    h.clock.set(h.clock.now() + 3600)  # past the dead invocation's lease: the sweeper finds it
    h.run_until_idle()
    expected = {"paid": "raced"} if send else {"timed_out": "callback 'payment' timed out after 3600 s"}
    assert inst.status().output == expected
    assert _one_outcome(h, inst) is (EntryStatus.COMPLETE if send else EntryStatus.TIMED_OUT)
    assert "closing" not in full_journal(h.store, inst.id, 1)[0].extra
