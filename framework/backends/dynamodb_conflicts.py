"""DynamoDB's transaction conflicts, retried where every write is sent.

DynamoDB rejects a PutItem, UpdateItem or DeleteItem on an item that a TransactWriteItems in flight
includes (``TransactionConflictException``), and cancels a TransactWriteItems that meets another write
in flight on one of its items (``TransactionCanceledException`` with reason ``TransactionConflict``).
Nothing was written then, and botocore retries neither. Here: ``send_event``'s transaction checks the
instance item while workers lease and release it, and ``create_batch``'s puts instance items that a
create of the same id may write at the same moment.

Every write of the store goes through ``ConflictRetrying``: it is sent again after a short backoff,
``ATTEMPTS`` times in all, then ``InstanceBusyError`` is raised. A cancellation that has any other
reason (a failed condition above all) is an answer, and passes through as it came.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from framework.errors import InstanceBusyError

ATTEMPTS = 5  # tries of one write in all
BASE_DELAY = 0.025  # seconds before the second try; doubled before each further one (at most 0.4 s in all)
WRITES = frozenset({"put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"})
NO_REASON = {"None", None}  # a cancellation reason for an item that was not the cause
pause: Callable[[float], None] = time.sleep  # tests count the pauses instead of taking them


def transaction_conflict(exc: BaseException) -> bool:
    """``exc`` is a write that DynamoDB refused for a transaction conflict alone."""
    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code")
    if code == "TransactionConflictException":
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = {reason.get("Code") for reason in exc.response.get("CancellationReasons", [])}
    return "TransactionConflict" in reasons and reasons <= NO_REASON | {"TransactionConflict"}


class ConflictRetrying:
    """A low-level DynamoDB client whose writes (``WRITES``) are retried on transaction conflicts, as
    above. Everything else is the wrapped client's, unchanged."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in WRITES:
            return attr

        @functools.wraps(attr)
        def retrying(**kwargs: Any) -> Any:
            for attempt in range(ATTEMPTS - 1):
                try:
                    return attr(**kwargs)
                except ClientError as exc:
                    if not transaction_conflict(exc):
                        raise
                # Jitter: writers that collided once should not meet again at the same moment.
                delay = BASE_DELAY * 2**attempt
                pause(delay / 2 + random.uniform(0, delay / 2))
            try:
                return attr(**kwargs)
            except ClientError as exc:
                if not transaction_conflict(exc):
                    raise
                raise InstanceBusyError(
                    f"DynamoDB {exc.operation_name} met another write in flight on the same item "
                    f"{ATTEMPTS} times; nothing was written: try again"
                ) from exc

        return retrying
