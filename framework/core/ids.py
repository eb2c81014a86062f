"""Instance ids: what an id may hold, and how an id is written where it meets other text.

An id is 1 to 100 ASCII characters: letters, digits and ``_ - . : @ /``, the first a letter, a digit or
``_`` (so ``order:123``, ``ana@example.com`` and ``orders/2024/7`` are ids). It is compared as is: no
case folding and no Unicode normalisation (none is needed: every character it may hold is ASCII).
Why each rule holds, and where an id is embedded, is in docs/limits.md ("Instance ids"):

- ``#`` is out: it separates the parts of sort keys, and the sweeper's item is keyed ``#sweeper``.
- The first character is a letter, a digit or ``_``: no ``-`` (it would read as a CLI option), no
  ``.`` (``.`` and ``..`` are path segments that clients and browsers resolve away), and no separator.
- ``%`` is out, so that an id read from a URL path is percent-decoded exactly once, with no doubt
  (:func:`from_path`), and the blob keys' escapes (:func:`key_segment`) never meet one.
- 100 bytes keep every key an id is part of far inside DynamoDB's and S3's limits (a partition key
  takes 2,048 bytes, an S3 key 1,024), with room for a child id built from it.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from framework.errors import InvalidInstanceIdError

MAX_ID_CHARS = 100
ID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@/-]{0,99}")
RULE = (
    f"use 1 to {MAX_ID_CHARS} letters, digits, '_', '-', '.', ':', '@' or '/', "
    "starting with a letter, a digit or '_'"
)


def is_instance_id(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_instance_id(instance_id: Any) -> str:
    """Return ``instance_id`` if it is a valid id; else raise InvalidInstanceIdError (a ValueError),
    whose message shows the value escaped and cut (``shown``)."""
    if not is_instance_id(instance_id):
        raise InvalidInstanceIdError(f"instance id {shown(instance_id)} is invalid: {RULE}")
    return str(instance_id)


def shown(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters: repr escapes control and invisible characters
    (NUL, newlines, bidi overrides), and the cut keeps a hostile value from filling an error message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def key_segment(instance_id: str) -> str:
    """The id as one segment of an S3 key (``results/<segment>/<incarnation>/...``): percent-encoded
    but for letters, digits and ``_ - .``, so that ``/`` never splits it and no id's keys begin with
    another id's prefix. An id of the old charset (letters, digits, ``_`` and ``-``) is unchanged."""
    return urllib.parse.quote(instance_id, safe="")


def path_segment(instance_id: str) -> str:
    """The id as a client writes it in a path of the HTTP API: percent-encoded twice. API Gateway's
    HTTP APIs decode the path once before the function sees it (``%2F`` arrives as ``/``, where no
    route could tell it from a separator); what arrives is then one segment, which the API decodes
    once more (:func:`from_path`)."""
    return urllib.parse.quote(urllib.parse.quote(instance_id, safe=""), safe="")


def from_path(segment: str) -> str:
    """The id a path segment names, as the function receives it (decoded once already by API
    Gateway): percent-decoded once more. Since no id holds ``%``, a segment sent encoded once (or as
    is) names the same id: ``ana@example.com``, ``ana%40example.com`` and ``ana%2540example.com``
    all read ``ana@example.com``. What does not decode to UTF-8 is returned as is (and is no id)."""
    if "%" not in segment:
        return segment
    try:
        return urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return segment
