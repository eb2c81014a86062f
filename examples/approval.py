"""Wait days for a person's approval; escalate to a manager when it does not come in time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from framework import WorkflowTimeoutError, workflow


class ExpenseParams(BaseModel):
    employee: str
    amount: float = Field(gt=0)
    approval_timeout: str = "3 days"


@workflow("expense-approval", params=ExpenseParams)
def expense_approval(event: Any, step: Any) -> dict[str, Any]:
    expense: ExpenseParams = event.payload
    step.do("notify approver", lambda: f"asked to approve {expense.amount:.2f} for {expense.employee}")
    try:
        decision = step.wait_for_event("approval", "approval", timeout=expense.approval_timeout)
    except WorkflowTimeoutError:
        step.do("escalate", lambda: f"escalated {expense.employee}'s expense to a manager")
        decision = step.wait_for_event("manager approval", "approval", timeout="7 days")
        return {
            "approved": bool(decision.payload.get("approved")),
            "by": decision.payload.get("by"),
            "escalated": True,
        }
    return {
        "approved": bool(decision.payload.get("approved")),
        "by": decision.payload.get("by"),
        "escalated": False,
    }
