"""Failures of AWS calls, oversized items, shrinking code, and timers that are not ours."""

from __future__ import annotations

import itertools
import signal
import time
from typing import Any

import pytest

from framework import StepFailedError, Workflow
from framework.api.calls import call_with_timeout as _call_with_timeout
from framework.backends.blobs import MemoryBlobs
from framework.backends.environment import Settings
from framework.backends.store import full_journal
from framework.core.records import EntryKind, EntryStatus, JournalEntry
from framework.engine.invocation import LeaseLostError, Outcome
from tests.unit.harness import Harness, fail_once


class FlakyBlobs(MemoryBlobs):
    def __init__(self, fail_gets: int = 0, fail_puts: int = 0) -> None:
        super().__init__()
        self.fail_gets, self.fail_puts = fail_gets, fail_puts

    def get(self, key: str) -> bytes:
        if self.fail_gets:
            self.fail_gets -= 1
            raise ConnectionError("S3 is having a moment")
        return super().get(key)

    def put(self, key: str, data: bytes) -> None:
        if self.fail_puts:
            self.fail_puts -= 1
            raise ConnectionError("S3 is having a moment")
        super().put(key, data)


def test_a_failed_blob_read_on_replay_is_retried_not_an_error() -> None:
    def flow(event: Any, step: Any) -> Any:
        big = step.do("big", lambda: "b" * 400_000)
        step.sleep("nap", 60)
        try:
            return len(step.do("echo", lambda: big))
        except Exception as exc:  # a careless user: must not see the engine's failure
            return f"caught {exc!r}"

    h = Harness(Workflow("blob-read", flow))
    h.env.blobs = h.blobs = FlakyBlobs()
    inst = h.start("blob-read")
    h.run_due()
    h.blobs.fail_gets = 1
    h.run_until_idle()
    assert inst.status().output == 400_000
    assert h.outcomes[Outcome.RETRYING] == 1


def test_a_failed_blob_write_does_not_rerun_an_at_most_once_step() -> None:
    calls: list[int] = []

    def flow(event: Any, step: Any) -> Any:
        def charge() -> str:
            calls.append(1)
            return "c" * 400_000

        return len(step.do("charge", charge, config={"at_most_once": True, "retries": {"limit": 0}}))

    h = Harness(Workflow("blob-write", flow))
    h.env.blobs = h.blobs = FlakyBlobs(fail_puts=1)
    inst = h.start("blob-write")
    h.run_until_idle()
    # The body ran once; the started marker then counts the lost attempt as failed, as promised.
    assert calls == [1]
    st = inst.status()
    assert st.status == "errored" and "InvocationCrashedError" in st.error["message"]


def test_output_beside_large_params_goes_to_the_blob_store() -> None:
    h = Harness(Workflow("big-both", lambda event, step: "o" * 300_000))
    inst = h.start("big-both", {"blob": "p" * 200_000})
    h.run_until_idle()
    record = h.store.get_instance(inst.id)
    assert record.output is None and record.output_ref is not None
    assert inst.status().output == "o" * 300_000


def test_long_error_messages_are_cut() -> None:
    def flow(event: Any, step: Any) -> Any:
        def fail() -> None:
            raise ValueError("x" * 420_000)

        step.do("loud", fail, config={"retries": {"limit": 1, "delay": 0.1}})

    h = Harness(Workflow("loud", flow))
    inst = h.start("loud")
    h.run_until_idle()
    st = inst.status()
    assert st.error["name"] == "StepFailedError" and "ValueError" in st.error["message"]
    assert len(st.error["message"]) < 5000
    entry = full_journal(h.store, inst.id, 1)[0]
    assert all(len(a.error.message) < 600 for a in entry.attempts if a.error)


def test_calls_the_journal_has_but_the_code_no_longer_makes_are_nondeterminism() -> None:
    version = {"v": 1}

    def flow(event: Any, step: Any) -> Any:
        step.sleep("nap", 60)
        if version["v"] == 1:
            step.do("charge", lambda: "charged")
            step.sleep("again", 60)
        return "refund path"

    h = Harness(Workflow("shrunk", flow))
    inst = h.start("shrunk")
    h.advance(60)
    version["v"] = 2
    h.run_until_idle()
    st = inst.status()
    assert st.status == "errored" and st.error["name"] == "NonDeterminismError"
    assert "'charge'" in st.error["message"]


def test_a_step_cut_short_by_the_invocation_is_not_charged() -> None:
    runs: list[float] = []

    def flow(event: Any, step: Any) -> Any:
        step.do("use time", lambda: h.clock.advance(299.8))
        # 0.2 s left, half of it the margin: 0.3 s of real work cannot finish in this invocation.
        try:
            return step.do(
                "slow",
                lambda: runs.append(1) or time.sleep(0.3) or "done",
                config={"timeout": "1 minute", "retries": {"limit": 0}},
            )
        except StepFailedError as exc:
            return f"charged: {exc}"

    h = Harness(Workflow("cut-short", flow), invocation_seconds=300)
    h.env.settings = type(h.env.settings)(time_margin=0.2)
    inst = h.start("cut-short")
    h.run_until_idle()
    assert inst.status().output == "done"
    assert len(runs) == 2  # cut short once, then run whole in a fresh invocation


def test_a_journal_write_conflict_fails_only_that_message() -> None:
    def flow(event: Any, step: Any) -> Any:
        def race() -> str:
            # Another invocation records position 0 first.
            h.store.write_entry(
                event.instance_id,
                h.store.get_instance(event.instance_id).run_key,  # type: ignore[union-attr]
                JournalEntry(
                    0, EntryKind.STEP, "race", EntryStatus.COMPLETE, 0.0, result='{"$value":"theirs"}'
                ),
            )
            return "mine"

        mine = step.do("race", race)
        step.do("after", lambda: None)  # a completed step's entry is written at the next durable call
        return mine

    h = Harness(Workflow("race", flow))
    inst = h.start("race")
    body = h.queue.due()[0]
    with pytest.raises(LeaseLostError):
        h.deliver(body)
    assert isinstance(LeaseLostError("x"), Exception)  # the batch processor reports it for this message only
    h.clock.advance(400)
    h.deliver(body)
    assert inst.status().output == "theirs"


def test_an_outer_timer_survives_a_step_timeout() -> None:
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        assert _call_with_timeout(lambda: 42, 1.0) == 42
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 3.0 < remaining <= 5.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == []


class FailingReads:
    """Wraps a store: ``load_journal`` fails the next ``n`` times."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n = inner, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_journal(self, instance_id: str, run: Any, from_seq: int = 0) -> Any:
        if self.n:
            self.n -= 1
            raise ConnectionError("throttled")
        return self.inner.load_journal(instance_id, run, from_seq)


def test_failed_reads_back_off_and_the_sweeper_does_not_cut_the_backoff_short() -> None:
    from framework.engine.sweeper import sweep

    def flow(event: Any, step: Any) -> Any:
        step.sleep("nap", 10)
        return "done"

    # No journal cache: a warm container would not read the journal on resume at all.
    h = Harness(Workflow("reads", flow), settings=Settings(journal_cache_mb=0))
    inst = h.start("reads")
    h.run_due()
    h.env.store = FailingReads(h.env.store, 4)
    wakes: list[float] = []
    for _ in range(40):
        due = h.queue.next_due()
        if due is None:
            break
        h.clock.set(due)
        sweep(h.env)
        before = len(h.queue.sent)
        h.run_due()
        wakes += [h.clock.now()] if h.outcomes[Outcome.RETRYING] > len(wakes) else []
        assert len(h.queue.sent) - before <= 2
    assert inst.status().output == "done"
    assert h.outcomes[Outcome.RETRYING] == 4
    gaps = [round(b - a) for a, b in itertools.pairwise(wakes)]
    assert gaps == sorted(gaps) and gaps[-1] >= 40  # 10, 20, 40 s: growing, not every 5 s


def test_a_swallowed_engine_failure_is_raised_again() -> None:
    def flow(event: Any, step: Any) -> Any:
        try:
            step.do("big", lambda: "b" * 400_000)
        except BaseException:
            pass
        return step.do("after", lambda: "went on")

    h = Harness(Workflow("swallow-fault", flow))
    h.env.blobs = h.blobs = FlakyBlobs(fail_puts=1)
    inst = h.start("swallow-fault")
    h.run_until_idle()
    assert inst.status().output == "went on"
    journal = full_journal(h.store, inst.id, 1)
    assert [e.name for e in journal] == ["big", "after"]  # no hole where the failed write was


class FailingOnce:
    """Wraps a store: the named method fails the next ``n`` times."""

    def __init__(self, inner: Any, method: str, n: int = 1) -> None:
        self.inner, self.method, self.n = inner, method, n

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def failing(*args: Any, **kwargs: Any) -> Any:
            if self.n:
                self.n -= 1
                raise ConnectionError("throttled")
            return attr(*args, **kwargs)

        return failing


@pytest.mark.parametrize("method", ["get_instance", "load_events"])
def test_engine_reads_never_reach_user_except_blocks(method: str) -> None:
    from framework.backends.environment import Settings

    def flow(event: Any, step: Any) -> Any:
        try:
            step.do("first", lambda: 1)
            step.do("charge", lambda: "charged")
            return step.wait_for_event("go", "go", timeout="1 hour").payload
        except Exception as exc:
            return f"fallback after {exc!r}"

    h = Harness(Workflow(f"reads-{method}", flow), settings=Settings(control_check_seconds=0))
    inst = h.start(f"reads-{method}")
    inst.send_event("go", "went")
    h.env.store = FailingOnce(h.env.store, method)
    h.run_until_idle()
    assert inst.status().output == "went"
    assert [e.name for e in inst.history() if e.kind != "event"] == ["first", "charge", "go"]


def test_a_result_that_fits_no_item_fails_the_step_before_anything_is_stored() -> None:
    calls: list[int] = []

    def flow(event: Any, step: Any) -> Any:
        def charge() -> str:
            calls.append(1)
            return "r" * (350_000 - 500)

        try:
            step.do("charge card", charge, config={"retries": {"limit": 0}})
        except StepFailedError as exc:
            return exc.error_type
        return "stored"

    h = Harness(Workflow("no-bucket", flow))
    h.env.blobs = None
    inst = h.start("no-bucket")
    h.run_until_idle()
    assert inst.status().output == "PayloadTooLargeError"
    assert calls == [1]


def test_failed_aws_calls_do_not_use_up_a_steps_retries() -> None:
    def flow(event: Any, step: Any) -> Any:
        return len(step.do("big", lambda: "b" * 400_000, config={"retries": {"limit": 1, "delay": 1}}))

    h = Harness(Workflow("two-puts", flow))
    # Two failed puts are two crashes in a row: the first is free and the second costs one attempt,
    # which a limit of 1 allows (a double count would have failed the step).
    h.env.blobs = h.blobs = FlakyBlobs(fail_puts=2)
    inst = h.start("two-puts")
    h.run_until_idle()
    assert inst.status().output == 400_000


class FailingEventReads:
    """Wraps a store: the ``n``-th ``load_events`` fails as a throttled Query would."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n, self.seen = inner, n, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_events(self, *args: Any, **kwargs: Any) -> Any:
        self.seen += 1
        if self.seen == self.n:
            raise ConnectionError("ThrottlingException")
        return self.inner.load_events(*args, **kwargs)


def test_an_event_whose_invocation_fails_is_taken_after_the_backoff_not_the_wait_deadline() -> None:
    def flow(event: Any, step: Any) -> Any:
        return step.wait_for_event("approval", "go", timeout="1 day").payload

    h = Harness(Workflow("kicked", flow))
    h.env.store = FailingEventReads(h.env.store, 3)  # the kicked invocation's read of its events
    inst = h.start("kicked")
    h.run_due()
    h.advance("10 seconds")
    inst.send_event("go", {"ok": 1})
    h.run_due()
    assert h.outcomes[Outcome.RETRYING] == 1
    h.advance("1 minute")  # the backoff (10 s), not the day the wait was parked for
    assert inst.status().output == {"ok": 1}


def test_a_pause_after_a_hand_over_makes_a_warm_container_read_the_journal() -> None:
    """Container A caches the journal; B runs the next step and hands over after a failed call;
    pause() takes B's lease away and resume() wakes it. A must read B's entry, not trust its copy."""
    from framework.backends.environment import Environment
    from framework.engine.invocation import process_message
    from tests.unit.harness import FakeContext

    runs: list[str] = []

    def flow(event: Any, step: Any) -> Any:
        step.do("s0", lambda: runs.append("s0"))
        step.sleep("z0", 5)
        step.do("s1", lambda: runs.append("s1"))
        step.sleep("z1", 5)
        return "done"

    h = Harness(Workflow("handed", flow))
    a = h.env
    b = Environment(store=h.env.store, queue=h.env.queue, clock=h.clock, registry=a.registry, blobs=a.blobs)
    inst = h.start("handed")
    h.run_due()  # A: s0, then z0; A caches the journal
    h.clock.advance(5)
    body = h.queue.due()[0]
    fail_once(h.store.inner, "release", ConnectionError("throttled"))
    assert process_message(body, FakeContext(h.clock, 300), b) is Outcome.RETRYING  # s1 written
    h.clock.advance(1)  # B's lease has run out: pause() applies at once, and clears the lease owner
    inst.pause()
    inst.resume()
    h.queue.due()  # drop B's own wake-up: A takes the resume's
    h.run_until_idle()
    assert inst.status().output == "done" and runs == ["s0", "s1"]
