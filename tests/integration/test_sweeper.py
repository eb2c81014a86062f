"""The sweeper recovers a wake-up that SQS refused right after the journal committed."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from framework.local import LocalRuntime
from tests.integration import workflows as w


class FailSends:
    """Make the engine's next ``n`` SendMessage calls fail as an SQS outage would."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.failed = 0

    def __call__(self, **_: Any) -> None:
        if self.left > 0:
            self.left -= 1
            self.failed += 1
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")


@pytest.mark.parametrize("outage", [1, 3])
def test_a_send_lost_after_a_journal_commit_is_recovered_by_the_sweeper(outage: int) -> None:
    with LocalRuntime(workflows=[w.sleepy]) as rt:
        inst = rt.client.create("it-sleepy", id="s1", params={"sleep": "10 minutes"})
        fail = FailSends(outage)
        # The engine's own SQS client: the worker records steps 0-4 and the sleep, then the send of its
        # wake-up fails; the message is deleted all the same (the journal holds the truth).
        rt.env.queue._sqs.meta.events.register("before-call.sqs.SendMessage", fail)  # type: ignore[attr-defined]
        swept = rt.invocations["SweeperFunction"]
        rt.run_until_idle()
        assert fail.failed == outage
        status = inst.status()
        assert status.status == "complete", status
        assert rt.invocations["SweeperFunction"] > swept, "the sweeper brought it back"
        names = [e.name for e in inst.history()]
        assert len(names) == len(set(names)), f"a step was recorded twice: {names}"
