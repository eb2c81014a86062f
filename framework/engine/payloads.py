"""Encoded results and outputs: inline in the item when small, in the blob store when large."""

from __future__ import annotations

from typing import Any

from framework.backends.environment import Environment
from framework.core import serde
from framework.errors import PayloadTooLargeError

# The encoding wraps a value in {"$value": ...} (and a type path for models): room for that, so a
# value of exactly the limit fits.
ENVELOPE_BYTES = 1024


def check(
    env: Environment, text: str, *, what: str, inline_room: int | None = None, limit: int | None = None
) -> bool:
    """Raise PayloadTooLargeError if ``text`` may not be stored at all: if it is larger than ``limit``
    (by default the configured result limit). Return True if it fits inline (in ``inline_room`` bytes,
    by default the configured inline limit)."""
    size = len(text.encode())
    limits = env.settings
    if limit is not None and size > limit:
        raise PayloadTooLargeError(f"{what} is {size} bytes encoded; the limit is {limit}")
    if limit is None and size > limits.max_result_bytes + ENVELOPE_BYTES:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes encoded; the limit is {limits.max_result_bytes} "
            "(WORKFLOWS_MAX_RESULT_BYTES)"
        )
    room = limits.inline_result_bytes if inline_room is None else inline_room
    if size <= room:
        return True
    if env.blobs is None:
        raise PayloadTooLargeError(
            f"{what} is {size} bytes encoded, more than fits in a DynamoDB item ({room}); "
            "set WORKFLOWS_BUCKET to store large results in S3"
        )
    return False


def store(
    env: Environment,
    text: str,
    key: str,
    *,
    what: str,
    inline_room: int | None = None,
    limit: int | None = None,
) -> tuple[str | None, str | None]:
    """Return ``(inline, ref)``: the text itself, or the blob key it was written under."""
    if check(env, text, what=what, inline_room=inline_room, limit=limit):
        return text, None
    assert env.blobs is not None
    env.blobs.put(key, text.encode())
    return None, key


def load(env: Environment, inline: str | None, ref: str | None) -> Any:
    """Decode a stored value, fetching it from the blob store if it lives there."""
    return load_text(env, inline, ref)[1]


def load_text(env: Environment, inline: str | None, ref: str | None) -> tuple[str | None, Any]:
    """A stored value's text (None for none stored) and the value decoded from it, fetching the text
    from the blob store if it lives there: for a caller that stores the same text again."""
    if ref is not None:
        if env.blobs is None:
            raise PayloadTooLargeError(f"value stored at {ref!r} needs WORKFLOWS_BUCKET to be read")
        inline = env.blobs.get(ref).decode()
    return inline, None if inline is None else serde.decode(inline)
