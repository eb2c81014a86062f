"""Encoded results and outputs: inline in the item when small, in the blob store when large."""

from __future__ import annotations

from typing import Any

from framework import serde
from framework.environment import Environment
from framework.errors import PayloadTooLargeError


def store(env: Environment, text: str, key: str, *, what: str) -> tuple[str | None, str | None]:
    """Return ``(inline, ref)``: the text itself, or the blob key it was written under."""
    size = len(text.encode())
    limits = env.settings
    if size > limits.max_result_bytes:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes encoded; the limit is {limits.max_result_bytes} "
            "(WORKFLOWS_MAX_RESULT_BYTES)"
        )
    if size <= limits.inline_result_bytes:
        return text, None
    if env.blobs is None:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes encoded, more than fits in a DynamoDB item "
            f"({limits.inline_result_bytes}); set WORKFLOWS_BUCKET to store large results in S3"
        )
    env.blobs.put(key, text.encode())
    return None, key


def load(env: Environment, inline: str | None, ref: str | None) -> Any:
    """Decode a stored value, fetching it from the blob store if it lives there."""
    if ref is not None:
        if env.blobs is None:
            raise PayloadTooLargeError(f"value stored at {ref!r} needs WORKFLOWS_BUCKET to be read")
        return serde.decode(env.blobs.get(ref).decode())
    return None if inline is None else serde.decode(inline)
