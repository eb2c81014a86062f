"""A saga with rollbacks, in the shape of Cloudflare's Python Workflows: a trip books a flight, a hotel
and a car, each a step with an undo, then takes the payment. When a later step fails, the undos that
were registered run, last in first out, each a durable step of its own with its own retries, and the
instance ends ``errored`` with the failure; ``terminate(rollback=True)`` runs them before it
terminates. The instance is ``rollingBack`` while they run, and its history shows each undo.

``PROVIDERS`` stands for the booking providers' side: what is booked now, by reference.
"""

from __future__ import annotations

from typing import Any

from framework import workflow

PROVIDERS: dict[str, str] = {}  # reference -> what it books
UNDO = {"retries": {"limit": 3, "delay": "10 seconds", "backoff": "exponential"}, "timeout": "1 minute"}


@workflow("trip-booking")
async def trip_booking(event: Any, step: Any) -> dict[str, Any]:
    trip = event.payload["trip"]

    def booking(what: str) -> Any:
        @step.with_rollback(f"book {what}", config={"retries": {"limit": 2}}, undo_config=UNDO)
        async def book() -> str:
            reference = f"{trip}-{what}"
            PROVIDERS[reference] = what
            return reference

        @book.undo
        async def cancel(error: BaseException, reference: str) -> None:
            PROVIDERS.pop(reference, None)  # idempotent: a retried undo finds nothing left to cancel

        return book

    references = [await booking(what)() for what in ("flight", "hotel", "car")]
    await step.sleep("hold", event.payload.get("hold", "1 minute"))  # terminate(rollback=True) here
    if event.payload.get("card_declined"):
        raise ValueError("the card was declined")  # the car, the hotel, then the flight are cancelled
    charged = await step.do("charge card", lambda: {"trip": trip, "charged": len(references) * 100})
    return {"booked": references, **charged}
