"""A failed AWS call of the engine, at any call site, hands the instance over: it never errors it, and
never loses it. Runs on the in-memory store here and on DynamoDB (moto) in tests/integration."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import framework
from framework import Workflow
from framework.backends.environment import Settings
from framework.engine.invocation import Outcome
from tests.unit.harness import Harness, fail_once


def throttled(operation: str, code: str = "ThrottlingException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, operation)


def test_a_throttled_crash_count_write_hands_the_instance_over() -> None:
    """Failure 3 of issue 11: after a crash, the UpdateItem of the crash count is throttled once."""
    runs: list[str] = []
    crashes = iter([True])

    def flow(event: Any, step: Any) -> Any:
        first = step.do("first", lambda: runs.append("first") or 1)
        if next(crashes, False):
            raise SystemExit("the invocation dies")
        return first + step.do("second", lambda: runs.append("second") or 2)

    h = Harness(Workflow("crash-count", flow))
    inst = h.start("crash-count")
    with pytest.raises(SystemExit):
        h.run_due()
    fail_once(h.store.inner, "record_crash", throttled("UpdateItem"))
    h.clock.advance(400)  # past the dead invocation's lease: the sweeper kicks it
    h.run_until_idle()
    st = inst.status()
    assert st.status == "complete" and st.output == 3, st
    assert h.outcomes[Outcome.RETRYING] == 1
    assert runs == ["first", "second"]


def test_an_engine_failure_the_workflow_turns_into_its_own_error_is_still_handed_over() -> None:
    raised = iter([True])

    def flow(event: Any, step: Any) -> Any:
        try:
            step.do("first", lambda: 1)
        except BaseException as exc:  # a careless user: the engine's failure becomes "theirs"
            raise ValueError("wrapped") from exc
        return "done"

    h = Harness(Workflow("convert", flow))
    real = h.store.inner.write_entry

    def write_entry(*args: Any, **kwargs: Any) -> None:
        if next(raised, False):
            raise throttled("PutItem", "ProvisionedThroughputExceededException")
        real(*args, **kwargs)

    h.store.inner.write_entry = write_entry
    inst = h.start("convert")
    h.run_until_idle()
    assert inst.status().output == "done"
    assert h.outcomes[Outcome.RETRYING] == 1


def test_an_event_sent_during_the_run_is_taken_when_the_look_after_the_release_fails() -> None:
    """The event's kick is turned away while the lease is held; the look after the release, which
    would find the event, fails: the instance is woken to look, not left to the wait's deadline."""
    from framework.core.faults import injected

    def flow(event: Any, step: Any) -> Any:
        return step.wait_for_event("approval", "go", timeout="1 day").payload

    h = Redelivering(Workflow("late-look", flow))
    h.plan = Plan()
    inst = h.start("late-look")
    sent = iter([True])

    def send_during_the_run(where: str, info: dict[str, Any]) -> None:
        if where == "instance.before_release" and next(sent, False):
            inst.send_event("go", {"ok": 1})
            assert [h.deliver(body) for body in h.queue.due()] == [Outcome.SKIPPED]  # its kick
            fail_once(h.store.inner, "load_events", throttled("Query"))

    with injected(send_during_the_run):
        h.run_due()
    h.advance("1 minute")
    assert inst.status().output == {"ok": 1}


# -- every call site in turn ---------------------------------------------------------------------


class Plan:
    """Which worker calls of the store, queue and blobs fail. Calls are counted only while a message
    is being handled (``active``): the client's and the test's own calls are not the engine's."""

    def __init__(self, fail: frozenset[tuple[str, int]] = frozenset()) -> None:
        self.fail = fail
        self.active = False
        self.calls: list[str] = []
        self.failed: list[str] = []


# Engine functions that only pass a call on: a site is named by the first function out from them.
PLUMBING = frozenset(
    {"call", "engine_call", "write_entry", "_put", "write", "flush", "load", "load_text", "store"}
)
PLUMBING |= {"send_wake", "release"}


FRAMEWORK = Path(framework.__file__).resolve().parent


def _caller() -> str:
    """``<path under framework/, no .py>.<qualname>`` of the first framework function out from the
    plumbing: the path, as file stems repeat (``engine/step`` and ``engine/ops/step``)."""
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        path = Path(code.co_filename).resolve()
        if path.is_relative_to(FRAMEWORK) and code.co_name not in PLUMBING:
            return f"{path.relative_to(FRAMEWORK).with_suffix('').as_posix()}.{code.co_qualname}"
        frame = frame.f_back
    return "?"


class Flaky:
    """Wraps a store, queue or blob store. A call site is ``label.method@caller``: the method, and the
    engine function that called it (``_caller``)."""

    def __init__(self, plan: Plan, label: str, inner: Any) -> None:
        self._plan, self._label, self._inner = plan, label, inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr
        plan, site = self._plan, f"{self._label}.{name}"

        def call(*args: Any, **kwargs: Any) -> Any:
            if plan.active:
                where = f"{site}@{_caller()}"
                plan.calls.append(where)
                if (where, plan.calls.count(where)) in plan.fail:
                    plan.failed.append(where)
                    raise throttled(name)
            return attr(*args, **kwargs)

        return call


class Redelivering(Harness):
    """A harness whose failed messages come back, as SQS delivers them again after the visibility
    timeout (900 s here: the most a delay can be)."""

    plan: Plan

    def deliver(self, body: str) -> Outcome:
        self.plan.active = True
        try:
            return super().deliver(body)
        except (Exception, SystemExit):
            self.queue.send(body, 900)
            return Outcome.SKIPPED
        finally:
            self.plan.active = False


BIG = 400_000  # over the inline limit: the result goes to the blob store


def site_workflow(runs: list[str]) -> Workflow:
    crashes = iter([True])

    def flow(event: Any, step: Any) -> Any:
        a = step.do("a", lambda: runs.append("a") or 1)
        if next(crashes, False):  # the next invocation finds a crash: it counts it (record_crash)
            raise SystemExit("the invocation dies")
        big = step.do("big", lambda: runs.append("big") or "b" * BIG)  # a blob put, a blob get on replay
        step.sleep("nap", 10)  # a release and a wake-up
        step.sleep("no-nap", 0)  # over at once: its entry is written at the next durable call
        n = step.do("len", lambda: runs.append("len") or len(big))
        approval = step.wait_for_event("go", "go", timeout="1 day")  # event reads, before and after
        return {"a": a, "n": n, "go": approval.payload, "pad": "o" * BIG}  # the output: a blob put

    return Workflow("sites", flow)


def run_sites(fail: frozenset[tuple[str, int]] = frozenset()) -> tuple[Redelivering, Any, list[str], Plan]:
    runs: list[str] = []
    plan = Plan(fail)
    # Looks for pause requests at every durable call: those reads are call sites too.
    h = Redelivering(site_workflow(runs), settings=Settings(control_check_seconds=0))
    h.plan = plan
    h.env.store = Flaky(plan, "store", h.env.store)  # type: ignore[assignment]
    h.env.queue = Flaky(plan, "queue", h.queue)  # type: ignore[assignment]
    h.env.blobs = Flaky(plan, "blobs", h.blobs)  # type: ignore[assignment]
    inst = h.start("sites", id="sites-1")
    h.advance("1 hour")  # the crash, the sleep: the instance waits for its event
    inst.send_event("go", {"ok": True})
    h.run_until_idle()
    return h, inst, runs, plan


def _clean_run() -> tuple[list[str], Any]:
    """The sites a clean run reaches, each once, in order, and its output."""
    _, inst, _, plan = run_sites()
    return list(dict.fromkeys(plan.calls)), inst.status().output


SITES, CLEAN_OUTPUT = _clean_run()
# Calls made only after a first failure, each after the failure that leads to it.
FIRST_WRITE = ("store.write_entry@engine/ops/step._record_success", 1)
HAND_OVER_SITES = [
    (FIRST_WRITE, ("store.expire_lease@engine/invocation.Invocation._retry_soon", 1)),
    (
        FIRST_WRITE,
        ("queue.send@engine/invocation.Invocation._retry_soon", 1),
    ),  # the wake-up after the backoff
]


def test_the_site_workflow_reaches_every_engine_call_site() -> None:
    assert set(SITES) >= {
        "store.acquire_lease@engine/invocation.process_message",
        "store.load_journal@engine/invocation.Invocation._replay",
        "store.record_crash@engine/invocation.Invocation._count_crash",
        "store.write_entry@engine/ops/step._record_success",
        "store.write_entry@engine/ops/wait.run",  # the wait's entry
        "store.write_entry@engine/ops/wait._take",  # the event it took
        "store.write_entry@engine/replay.Replay.boundary",  # a sleep's entry, at the next durable call
        "store.get_instance@engine/invocation.Invocation.pause_requested",
        "store.load_events@engine/invocation.Invocation.events",
        "store.load_events@engine/invocation.Invocation._arrived",  # the look after the release
        "store.release@engine/invocation.Invocation._suspend",
        "store.release@engine/ending.finish",
        "queue.send@engine/invocation.Invocation._suspend",
        "blobs.put@engine/ops/step._record_success",
        "blobs.put@engine/ending.complete",
        "blobs.get@engine/ops/step.run",
    }, SITES
    assert FIRST_WRITE[0] in SITES


def _check(fail: frozenset[tuple[str, int]]) -> None:
    h, inst, runs, plan = run_sites(fail)
    assert sorted(plan.failed) == sorted(site for site, _ in fail)  # each injected failure happened
    st = inst.status()
    assert st.status == "complete", st
    assert st.output == CLEAN_OUTPUT
    names = [e.name for e in inst.history() if e.kind != "event"]
    assert names == ["a", "big", "nap", "no-nap", "len", "go"]  # each recorded once
    # A body runs again only when the write of its result failed (the result was never recorded).
    assert sorted(set(runs)) == ["a", "big", "len"] and len(runs) - len(set(runs)) <= 1
    assert h.outcomes[Outcome.ERRORED] == 0


@pytest.mark.parametrize("site", SITES)
def test_one_failed_aws_call_at_any_engine_call_site_is_retried(site: str) -> None:
    _check(frozenset({(site, 1)}))


@pytest.mark.parametrize("sites", HAND_OVER_SITES, ids=[b[0] for _, b in HAND_OVER_SITES])
def test_a_failed_hand_over_leaves_the_instance_to_redelivery_and_the_sweeper(
    sites: tuple[tuple[str, int], tuple[str, int]],
) -> None:
    _check(frozenset(sites))
