"""Listing pages through instances that share a creation time (a batch): each exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from framework import Workflow
from framework.backends.environment import Settings
from framework.local import LocalRuntime


class TiesInAnyOrder(LocalRuntime):
    """DynamoDB promises no order among index items with equal sort keys: this runtime hands them back
    in ascending id order, the opposite of the order a page of the list is in."""

    def _session(self) -> Any:
        session = super()._session()
        session.events.register("after-call.dynamodb.Query", _shuffle_ties)
        return session


def _shuffle_ties(parsed: dict[str, Any], **_: Any) -> None:
    items = parsed.get("Items")
    if not items or "created_at" not in items[0]:
        return
    items.sort(key=lambda i: i["pk"]["S"])  # ascending ids...
    items.sort(key=lambda i: float(i["created_at"]["N"]), reverse=True)  # ...within each creation time


def flow(event: Any, step: Any) -> Any:
    return None


@pytest.mark.parametrize("shards", [1, 8])
def test_a_list_pages_through_a_batch_with_one_creation_time(shards: int) -> None:
    with TiesInAnyOrder(workflows=[Workflow("batched", flow)], settings=Settings(shards=shards)) as rt:
        ids = [f"b{n:02d}" for n in range(60)]
        rt.client.create_batch("batched", [{"id": i} for i in ids])
        rt.advance(1)
        rt.client.create("batched", id="later")
        seen: list[str] = []
        cursor = None
        while True:
            page = rt.client.list(limit=7, cursor=cursor)
            seen += [s.id for s in page.instances]
            cursor = page.cursor
            if cursor is None:
                break
        assert seen == ["later", *sorted(ids, reverse=True)]  # newest first, then by id: each once
