"""Races between invocations, and between invocations and control operations, on DynamoDB (moto).

Each test makes the other party's write land at the one moment that used to break a guarantee: inside
a step body or workflow code (an overlapping invocation), or between a read and the conditional write
that depends on it (a control operation, the sweeper, a release).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from framework import Workflow
from framework.backends.store import Store
from framework.core.records import Status
from framework.engine.invocation import WakeMessage, process_message
from framework.local import LocalRuntime

PAD = "p" * 400_000  # a value this large goes to S3


def take_over(rt: LocalRuntime, instance_id: str) -> None:
    """Another invocation (B) takes the instance while the current one (A) still runs: A's lease ran out
    early, as clock skew between workers can make it. B runs to its next wait or its end."""
    store = rt.env.store
    current = store.get_instance(instance_id)
    assert current is not None and current.lease_owner is not None
    store.expire_lease(instance_id, current.lease_owner, rt.clock.now() - 1, rt.clock.now(), 0)
    process_message(WakeMessage(instance_id).model_dump_json(), None, env=rt.env)


def test_a_large_step_result_is_never_overwritten_by_an_overlapping_invocation() -> None:
    calls: list[int] = []

    def flow(event: Any, step: Any) -> Any:
        def count() -> dict[str, Any]:
            calls.append(1)
            n = len(calls)
            if n == 1:  # A's body: B records its own result meanwhile, then A's put and write follow
                take_over(rt, event.instance_id)
            return {"n": n, "pad": PAD}

        return step.do("count", count)["n"]

    with LocalRuntime(workflows=[Workflow("overlap-step", flow)]) as rt:
        inst = rt.client.create("overlap-step", id="o1")
        rt.run_until_idle()
        assert calls == [1, 1]
        assert inst.status().output == 2  # B's first run saw n=2...
        assert inst.history()[0].result["n"] == 2  # ...and so does every reader after it


def test_a_large_output_is_never_overwritten_by_an_overlapping_invocation() -> None:
    calls: list[int] = []

    def flow(event: Any, step: Any) -> Any:
        calls.append(1)
        n = len(calls)
        if n == 1:  # A's workflow code: B finishes first; A then puts its output, and its release loses
            take_over(rt, event.instance_id)
        return {"n": n, "pad": PAD}

    with LocalRuntime(workflows=[Workflow("overlap-output", flow)]) as rt:
        inst = rt.client.create("overlap-output", id="o2")
        rt.run_until_idle()
        assert calls == [1, 1]
        assert inst.status().output["n"] == 2


def after_read(store: Store, instance_id: str, action: Callable[[], None]) -> None:
    """Run ``action`` once, right after the store's next read of ``instance_id``'s item."""
    real = store.get_instance
    armed = [True]

    def racing(wanted: str) -> Any:
        current = real(wanted)
        if armed[0] and wanted == instance_id:
            armed[0] = False
            action()
        return current

    store.get_instance = racing  # type: ignore[method-assign]


def test_a_resume_between_the_release_and_its_second_try_is_not_lost() -> None:
    def flow(event: Any, step: Any) -> Any:
        def ask_pause() -> None:
            inst.pause()  # the invocation runs: a pause request, taken at the release
            # The release's first write fails on the request and reads the item again; resume() lands
            # right after that read, before the release's second write.
            after_read(rt.env.store, event.instance_id, inst.resume)

        step.do("ask", ask_pause)
        step.sleep("nap", "1 hour")
        return "done"

    with LocalRuntime(workflows=[Workflow("resumed", flow)]) as rt:
        inst = rt.client.create("resumed", id="r1")
        rt.advance("1 minute")
        current = rt.env.store.get_instance("r1")
        assert current is not None and current.status is Status.WAITING  # resume() won: not paused
        assert not current.pause_requested
        rt.run_until_idle()
        assert inst.status().output == "done"


@pytest.mark.parametrize("action", ["pause", "terminate"])
def test_a_control_racing_with_the_sweepers_first_look_leaves_nothing_to_wake(action: str) -> None:
    def flow(event: Any, step: Any) -> Any:
        return step.do("s", lambda: 1)

    with LocalRuntime(workflows=[Workflow("watched", flow)]) as rt:
        inst = rt.client.create("watched", id="w1")
        store = rt.env.store
        # The sweeper's first look lands between the control's read and its write.
        after_read(store, "w1", lambda: store.watch("w1", rt.clock.now() + 60) and None)
        getattr(inst, action)()
        current = store.get_instance("w1")
        assert current is not None and current.due_at is None  # nothing left for the sweeper
        rt.advance("1 minute")  # the start message comes, and is turned away
        calls = rt.aws_calls.copy()
        rt.advance("1 hour")  # would be 15 wake-ups, sends and updates
        assert rt.aws_calls["sqs.SendMessage"] == calls["sqs.SendMessage"]
        assert rt.aws_calls["dynamodb.UpdateItem"] == calls["dynamodb.UpdateItem"]
        rt.run_until_idle()  # returns: nothing is due
        assert inst.status().status == ("paused" if action == "pause" else "terminated")
