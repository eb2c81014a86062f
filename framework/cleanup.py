"""What TTL leaves behind: when DynamoDB's TTL removes a finished instance's item, its journal items,
events and S3 results are removed too (driven by the table's stream, see handlers/cleanup.py)."""

from __future__ import annotations

from framework.environment import Environment, current
from framework.logs import logger


def purge(instance_id: str, env: Environment | None = None) -> int:
    """Delete the instance's remaining items and blobs. Safe to run twice. Return items + blobs."""
    env = env or current()
    again = env.store.get_instance(instance_id)
    if again is not None:
        # A new instance took the id after TTL removed the old one: remove only what is older than it,
        # and leave the blobs, which carry no time.
        logger.warning("id used again: purging only older items", extra={"instance_id": instance_id})
        return env.store.purge(instance_id, before=again.created_at)
    removed = env.store.purge(instance_id)
    if env.blobs is not None:
        removed += env.blobs.delete_prefix(f"results/{instance_id}/")
        removed += env.blobs.delete_prefix(f"outputs/{instance_id}/")
    logger.info("expired instance purged", extra={"instance_id": instance_id, "removed": removed})
    return removed
