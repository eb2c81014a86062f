"""The sweeper revives instances whose wake-up was lost; logs carry ids and stay quiet on replay."""

from __future__ import annotations

import json
from typing import Any

import pytest

from framework import Workflow
from framework.core.faults import injected
from framework.engine.sweeper import sweep
from tests.unit.harness import Harness


def test_sweeper_requeues_an_instance_whose_start_was_lost() -> None:
    h = Harness(Workflow("swept", lambda event, step: step.do("a", lambda: "ok")))
    inst = h.start("swept")
    h.queue.due()  # the start message is lost
    assert sweep(h.env) == 0  # not yet past the grace period
    h.clock.advance(121)
    assert sweep(h.env) == 1
    assert sweep(h.env) == 0  # postponed: a second sweep leaves the kick in flight alone
    h.run_due()
    assert inst.status().output == "ok"
    assert sweep(h.env) == 0  # finished instances leave the index


def test_sweeper_requeues_a_sleep_whose_wake_up_was_lost() -> None:
    def flow(event: Any, step: Any) -> str:
        step.sleep("nap", "10 minutes")
        return "woke"

    h = Harness(Workflow("swept-sleep", flow))
    inst = h.start("swept-sleep")

    class Lost(BaseException):
        pass

    def lose_send(where: str, info: dict[str, Any]) -> None:
        if where == "queue.before_send":
            raise Lost

    with injected(lose_send), pytest.raises(Lost):
        h.run_due()  # the status says waiting, but the wake-up is never sent
    assert len(h.queue) == 0
    h.clock.advance(600 + 121)
    assert sweep(h.env) == 1
    h.run_due()
    assert inst.status().output == "woke"


def test_a_parked_sleep_is_sent_once_and_resent_only_if_its_wake_up_is_lost() -> None:
    def flow(event: Any, step: Any) -> str:
        step.sleep("nap", "2 hours")
        return "woke"

    h = Harness(Workflow("parked", flow))
    inst = h.start("parked")
    h.run_due()
    assert len(h.queue) == 0  # parked: nothing in flight
    parked = h.store.get_instance(inst.id)
    h.clock.advance(7200 - 721)
    assert sweep(h.env) == 0  # not yet within park_lead + grace (720 s) of the wake time
    h.clock.advance(1)
    calls = h.store.calls
    assert sweep(h.env) == 1  # sends the one wake-up, 720 s ahead
    assert h.queue.sent[-1][1] == 720
    assert h.store.get_instance(inst.id) == parked  # and writes nothing to the instance
    assert h.store.calls - calls == 6  # mark, parked query, new instances, overdue query, mark, the get
    h.clock.advance(60)
    assert sweep(h.env) == 0  # in flight: left alone until the grace after the wake time
    h.clock.advance(660)
    assert len(h.queue.due()) == 1  # the wake-up lands at the wake time, and is lost
    h.clock.advance(119)
    assert sweep(h.env) == 0  # the sweeper gives it the grace after the wake time first
    h.clock.advance(2)
    assert sweep(h.env) == 1
    h.run_due()
    assert inst.status().output == "woke"


def test_a_failed_send_leaves_the_others_swept_and_is_retried_after_the_grace() -> None:
    h = Harness(Workflow("swept-many", lambda event, step: step.do("a", lambda: "ok")))
    instances = [h.start("swept-many", id=f"m{i}") for i in range(3)]
    h.queue.due()  # every start message is lost
    h.clock.advance(121)
    real_send, calls = h.queue.send, []

    def flaky(body: str, delay_seconds: int) -> None:
        calls.append(body)
        if len(calls) == 1:
            raise ConnectionError("SQS is down")
        real_send(body, delay_seconds)

    h.queue.send = flaky  # type: ignore[method-assign]
    assert sweep(h.env) == 2  # one failed send does not stop the sweep
    assert sweep(h.env) == 0  # postponed, like the others: due again one grace later, swept after another
    h.run_due()  # the two that were sent complete
    h.clock.advance(2 * 121)
    assert sweep(h.env) == 1
    h.run_due()
    assert [i.status().output for i in instances] == ["ok"] * 3


def test_logs_carry_ids_and_skip_replayed_steps() -> None:
    import io

    from framework.core.logs import logger

    stream = io.StringIO()

    def lines() -> list[dict[str, Any]]:
        out = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
        stream.seek(0)
        stream.truncate()
        return out

    def flow(event: Any, step: Any) -> str:
        step.do("first", lambda: 1)
        step.sleep("nap", 60)
        step.do("second", lambda: 2)
        return "ok"

    h = Harness(Workflow("logged", flow))
    old_level, old_stream = logger.log_level, logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    logger.setLevel("INFO")
    try:
        inst = h.start("logged", id="log-1", params={"secret": "k"})
        h.run_due()
        first = lines()
        h.advance(60)
        second = lines()
    finally:
        logger.setLevel(old_level)
        logger.registered_handler.setStream(old_stream)  # type: ignore[attr-defined]
    assert inst.status().output == "ok"
    completed = [line for line in first if line["message"] == "step completed"]
    assert [(c["step"], c["instance_id"], c["workflow"]) for c in completed] == [("first", "log-1", "logged")]
    # On resume, "first" is only replayed: nothing is logged about it.
    assert [c["step"] for c in second if c["message"] == "step completed"] == ["second"]
    assert all(line.get("instance_id") == "log-1" for line in first + second)
    assert not any("secret" in json.dumps(line) for line in first + second)  # params are never logged


def test_a_parked_wake_up_that_fails_to_send_is_tried_again_before_the_wake_time() -> None:
    h = Harness(Workflow("parked-flaky", lambda event, step: step.sleep("nap", "2 hours")))
    h.start("parked-flaky")
    h.run_due()
    h.clock.advance(7200 - 600)
    real_send = h.queue.send

    def down(body: str, delay_seconds: int) -> None:
        raise ConnectionError("SQS is down")

    h.queue.send = down  # type: ignore[method-assign]
    assert sweep(h.env) == 0
    h.queue.send = real_send  # type: ignore[method-assign]
    h.clock.advance(2 * 121)  # due again one grace after the failure, not one grace after the wake time
    assert sweep(h.env) == 1
    assert h.queue.sent[-1][1] == 600 - 2 * 121  # still lands on the wake time


def test_every_parked_wake_up_come_due_is_sent_whatever_the_sweep_limit() -> None:
    from framework.backends.environment import Settings

    flow = Workflow("many-naps", lambda event, step: step.sleep("nap", "2 hours"))
    h = Harness(flow, settings=Settings(sweep_limit=3))
    instances = [h.start("many-naps", id=f"n{i}") for i in range(7)]  # equal due times
    h.run_due()
    h.clock.advance(7200 - 700)  # every one's send time has passed
    assert sweep(h.env) == 7
    assert sweep(h.env) == 0  # each is sent by one run only
    h.clock.advance(700)
    h.run_due()
    assert [i.status().status for i in instances] == ["complete"] * 7
