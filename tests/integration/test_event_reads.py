"""What a wait reads as events accumulate: taken events are deleted once the run goes on, so each wait
reads only the events not yet taken, however many came before."""

from __future__ import annotations

from typing import Any

from framework import Workflow
from framework.local import LocalRuntime

WAITS = 30


class EventReads(LocalRuntime):
    """Counts the event items each Query returns."""

    def _session(self) -> Any:
        session = super()._session()
        self.event_items: list[int] = []

        def count(parsed: dict[str, Any], **_: Any) -> None:
            events = [i for i in parsed.get("Items", []) if i.get("sk", {}).get("S", "").startswith("e#")]
            if events:
                self.event_items.append(len(events))

        session.events.register("after-call.dynamodb.Query", count)
        return session


def ticker(event: Any, step: Any) -> Any:
    return [step.wait_for_event(f"tick {n}", "tick", timeout="1 day").payload for n in range(WAITS)]


def test_each_wait_reads_only_what_is_not_taken_yet() -> None:
    with EventReads(workflows=[Workflow("ticker", ticker)]) as rt:
        inst = rt.client.create("ticker", id="t1")
        rt.advance(1)
        for n in range(WAITS):
            inst.send_event("tick", n)
            rt.advance(1)
        assert inst.status().output == list(range(WAITS))
        # One event item per Query at most: the one just sent (without the deletes: 1, 2, ... 30).
        assert rt.event_items and max(rt.event_items) == 1, rt.event_items
        assert [e.payload for e in inst.history() if e.kind == "event"] == list(range(WAITS))


def test_an_event_sent_before_its_wait_is_still_taken_after_others_were_deleted() -> None:
    def two(event: Any, step: Any) -> Any:
        first = step.wait_for_event("first", "go", timeout="1 day").payload
        step.sleep("nap", "1 minute")
        return [first, step.wait_for_event("second", "go", timeout="1 day").payload]

    with EventReads(workflows=[Workflow("two", two)]) as rt:
        inst = rt.client.create("two", id="t2")
        inst.send_event("go", "a")
        inst.send_event("go", "b")  # buffered until the second wait
        rt.run_until_idle()
        assert inst.status().output == ["a", "b"]
        assert [(e.payload, e.status) for e in inst.history() if e.kind == "event"] == [
            ("a", "consumed"),
            ("b", "consumed"),
        ]
