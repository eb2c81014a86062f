"""A parent with a child workflow: an order charges the customer, starts a shipping workflow as a child
instance (``step.invoke``), waits for its label, then confirms.

``shipping`` books a courier, waits for the pick-up, and prints the label. It is an ordinary instance
(``parent_id`` set), so it can be looked at, paused or terminated like any other; its end is reported
to the order exactly once.
"""

from __future__ import annotations

from typing import Any

from framework import ChildWorkflowError, workflow


@workflow("shipping")
def shipping(event: Any, step: Any) -> dict[str, Any]:
    order = event.payload["order"]
    courier = step.do("book courier", lambda: "courier-7" if event.payload.get("address") else None)
    if courier is None:
        raise ValueError("the order has no address")
    step.sleep("pick-up", event.payload.get("pickup_in", "10 minutes"))
    label = step.do("print label", lambda: f"{courier}/{order}")
    return {"label": label, "courier": courier}


@workflow("order-fulfilment")
def order_fulfilment(event: Any, step: Any) -> dict[str, Any]:
    order = event.payload["order"]
    charge = step.do("charge", lambda: {"charged": event.payload["amount"]})
    params = {"order": order, "address": event.payload.get("address")}
    try:
        shipped = step.invoke("ship", "shipping", params=params, id=f"{order}-ship", timeout="2 days")
    except ChildWorkflowError as exc:
        refund = step.do("refund", lambda: {"refunded": charge["charged"]})
        return {"order": order, "shipped": False, "why": exc.error_type, **refund}
    step.do("confirm", lambda: f"mail sent for {order}")
    return {"order": order, "shipped": True, **shipped}
