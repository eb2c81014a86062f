"""Callback ids: which instance, run and journal entry a callback is, and the token that proves it.

An id reads ``<base64url(instance id)>.<run>.<seq>.<token>``. ``token`` is 128 random bits drawn when
the callback is created and kept in its journal entry: a send must present it, so no id can be guessed
from an instance id, and an id of an earlier run (a restart), or of an earlier instance of the same id,
matches no waiting entry. The outcome and the heartbeat a sender sends are kept as events of types no
user event can have (``$`` is not allowed in event types), under keys made from the token.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Any

from framework.core.ids import is_instance_id
from framework.errors import CallbackNotFoundError

CALLBACK_EVENT = "$callback"  # the outcome: success or failure, one per callback
HEARTBEAT_EVENT = "$heartbeat"  # the latest heartbeat, one per callback, replaced by later ones
TOKEN_BYTES = 16
MAX_ID_CHARS = 400
_ID = re.compile(r"([A-Za-z0-9_-]{1,136})\.([1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,5})\.([A-Za-z0-9_-]{22})")


def new_token() -> str:
    """128 random bits, base64url: 22 characters."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class CallbackId:
    instance_id: str
    run: int
    seq: int
    token: str

    def __str__(self) -> str:
        encoded = base64.urlsafe_b64encode(self.instance_id.encode()).decode().rstrip("=")
        return f"{encoded}.{self.run}.{self.seq}.{self.token}"

    @property
    def outcome_key(self) -> str:
        """The key of its outcome event: a second outcome lands on the same key, and is refused."""
        return f"{CALLBACK_EVENT}#{self.token}"

    @property
    def heartbeat_key(self) -> str:
        return f"{HEARTBEAT_EVENT}#{self.token}"


def parse_callback_id(text: Any) -> CallbackId:
    """The parts of an id this framework issued. Raise CallbackNotFoundError for anything else; the
    message never shows the text (it is a secret, and may be anything)."""
    match = _ID.fullmatch(text) if isinstance(text, str) and len(text) <= MAX_ID_CHARS else None
    if match is None:
        raise CallbackNotFoundError("the callback id is malformed: it is not one that create_callback issued")
    encoded, run, seq, token = match.groups()
    try:
        instance_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        instance_id = ""
    parsed = CallbackId(instance_id, int(run), int(seq), token)
    # One spelling per id: the instance part must be the canonical encoding of a valid instance id.
    if not is_instance_id(instance_id) or str(parsed) != text:
        raise CallbackNotFoundError("the callback id is malformed: it is not one that create_callback issued")
    return parsed
