"""A webhook payment with a callback: the workflow asks a payment provider to charge a card and hands it
a callback id; the provider's webhook answers on that id (``send_callback_success`` or
``send_callback_failure``, over the client, ``POST /callbacks/{id}/...`` or the inbox), and the workflow
goes on with what it sent. No polling, and nothing waits in memory while the provider works.

``PROVIDER`` stands for the provider's side: it keeps the callback id of each charge asked for, as a
real provider keeps the webhook URL you give it.
"""

from __future__ import annotations

from typing import Any

from framework import CallbackFailedError, WorkflowTimeoutError, workflow

PROVIDER: dict[str, str] = {}  # order -> the callback id the provider answers on


def ask_provider(order: str, amount: float, callback_id: str) -> dict[str, Any]:
    """The provider's API call: it answers later, on the webhook."""
    PROVIDER[order] = callback_id
    return {"requested": amount}


@workflow("webhook-payment")
async def webhook_payment(event: Any, step: Any) -> dict[str, Any]:
    order, amount = event.payload["order"], event.payload["amount"]
    try:
        paid = await step.wait_for_callback(
            "payment",
            lambda callback_id: ask_provider(order, amount, callback_id),
            timeout=event.payload.get("timeout", "1 hour"),
        )
    except CallbackFailedError as exc:
        return {"order": order, "paid": False, "reason": exc.error_type}
    except WorkflowTimeoutError:
        await step.do("cancel charge", lambda: {"cancelled": order})
        return {"order": order, "paid": False, "reason": "timeout"}
    receipt = await step.do("send receipt", lambda: f"receipt for {paid['charge_id']}")
    return {"order": order, "paid": True, "receipt": receipt}
