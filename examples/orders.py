"""Async workflows: an order whose steps run in parallel, and a quote built as a Cloudflare-style class
with a DAG of steps.

``async-order`` prices every item at once, reserves stock and checks for fraud at the same time, sleeps,
and waits for an approval event. ``order-dag`` is a ``WorkflowEntrypoint``: decorated steps, their
dependencies injected by parameter name and resolved concurrently, each run once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from framework import NonRetryableError, WorkflowEntrypoint, workflow

PRICES = {"book": 12.5, "lamp": 30.0, "pen": 1.5}
STOCK = {"book": 10, "lamp": 2, "pen": 100}
CALLS: Counter[str] = Counter()  # body runs, by step: the demo and the tests read them


async def price_of(item: str) -> float:
    CALLS[f"price {item}"] += 1
    await asyncio.sleep(0.05)  # a catalogue lookup over the network
    if item not in PRICES:
        raise NonRetryableError(f"unknown item {item!r}")  # no retry can mend it
    return PRICES[item]


def reserve(items: list[str]) -> list[str]:
    CALLS["reserve stock"] += 1
    time.sleep(0.05)  # a blocking inventory call: it runs on a thread of its own
    for item in items:
        if STOCK.get(item, 0) < 1:
            raise NonRetryableError(f"{item!r} is out of stock")
    return sorted(items)


def fraud_score(customer: str) -> float:
    CALLS["fraud check"] += 1
    time.sleep(0.05)
    return 0.9 if customer.startswith("mallory") else 0.1


@workflow("async-order")
async def async_order(event: Any, step: Any) -> Any:
    items: list[str] = event.payload["items"]
    customer: str = event.payload["customer"]
    prices = await asyncio.gather(*(step.do(f"price {i}", lambda i=i: price_of(i)) for i in items))
    reserved, score = await asyncio.gather(
        step.do("reserve stock", lambda: reserve(items)),
        step.do("fraud check", lambda: fraud_score(customer), config={"retries": {"limit": 3}}),
    )
    if score > 0.5:
        return {"status": "rejected", "score": score}
    await step.sleep("cool off", event.payload.get("cool_off", "1 hour"))
    approval = await step.wait_for_event("approval", "approved", timeout="3 days")
    return {"status": "approved", "total": sum(prices), "items": reserved, "by": approval.payload["by"]}


class OrderDag(WorkflowEntrypoint):
    """A quote from two lookups that run at the same time, each once, whoever asks for them."""

    name = "order-dag"

    async def run(self, event: Any, step: Any) -> Any:
        @step.do()
        async def load_customer() -> dict[str, Any]:
            CALLS["load_customer"] += 1
            await asyncio.sleep(0.05)
            return {"name": event["payload"]["customer"], "discount": 0.1}

        @step.do("load cart", config={"retries": {"limit": 3, "delay": "5 seconds"}, "timeout": "1 minute"})
        async def load_cart(ctx: Any) -> list[float]:
            CALLS["load cart"] += 1
            await asyncio.sleep(0.05)
            return [PRICES[item] for item in event["payload"]["items"]]

        @step.do(concurrent=True)
        async def quote(load_customer: dict[str, Any], load_cart: list[float]) -> float:
            return round(sum(load_cart) * (1 - load_customer["discount"]), 2)

        total = await quote()
        await step.sleep("hold", "10 seconds")
        return {"instance": event["instanceId"], "total": total, "again": await quote()}
