"""examples/approval.py: approval in time, and escalation when the approver is silent."""

from __future__ import annotations

from examples.approval import expense_approval
from framework.local import LocalRuntime


def test_approved_in_time() -> None:
    with LocalRuntime(workflows=[expense_approval]) as rt:
        inst = rt.client.create("expense-approval", {"employee": "ana", "amount": 12.5})
        rt.advance("1 day")
        assert inst.status().status == "waiting"
        inst.send_event("approval", {"approved": True, "by": "bo"})
        rt.advance(0)
        assert inst.status().output == {"approved": True, "by": "bo", "escalated": False}


def test_escalates_after_the_timeout_then_takes_the_managers_answer() -> None:
    with LocalRuntime(workflows=[expense_approval]) as rt:
        inst = rt.client.create(
            "expense-approval", {"employee": "cy", "amount": 99, "approval_timeout": "2 days"}
        )
        rt.advance("2 days")
        names = [(e.kind, e.name, e.status) for e in inst.history()]
        assert ("step", "escalate", "complete") in names
        assert ("wait", "approval", "timed_out") in names
        inst.send_event("approval", {"approved": False, "by": "manager"})
        rt.advance(0)
        assert inst.status().output == {"approved": False, "by": "manager", "escalated": True}


def test_silence_everywhere_errors_with_a_timeout() -> None:
    with LocalRuntime(workflows=[expense_approval]) as rt:
        inst = rt.client.create("expense-approval", {"employee": "di", "amount": 1})
        rt.run_until_idle()
        assert inst.status().error["name"] == "WorkflowTimeoutError"
