"""What TTL leaves behind: when DynamoDB's TTL removes a finished instance's item, its journal items,
events and S3 results are removed too (driven by the table's stream, see handlers/cleanup.py)."""

from __future__ import annotations

from framework.backends.environment import Environment, current
from framework.core.ids import key_segment
from framework.core.logs import logger

BLOB_KINDS = ("results", "outputs")  # the prefixes an instance's blobs are under


def purge(instance_id: str, env: Environment | None = None) -> int:
    """Delete what gone instances of this id left behind: their journal and event items and blobs.
    Everything is stored under an incarnation, so a new instance that took the id meanwhile keeps all
    of its own (and could never read the old ones anyway). Safe to run twice. Return items + blobs."""
    env = env or current()
    # List first, then read which instance has the id: a blob listed here was put after its instance
    # was created, so the read below sees that instance, and its blobs are kept.
    listed = (
        []
        if env.blobs is None
        else [k for kind in BLOB_KINDS for k in env.blobs.keys(f"{kind}/{key_segment(instance_id)}/")]
    )
    removed = env.store.purge(instance_id)  # the same order inside: its Query, then the instance item
    again = env.store.get_instance(instance_id)
    keep = None if again is None else again.incarnation
    if env.blobs is not None:
        # Blob keys are <kind>/<id escaped>/<incarnation>/...: the escaped id holds no "/", so no other
        # id's keys share the prefix (ids "a" and "a/b" are "a/" and "a%2Fb/").
        removed += env.blobs.delete([k for k in listed if k.split("/")[2] != keep])
    logger.info("expired instance purged", extra={"instance_id": instance_id, "removed": removed})
    return removed
