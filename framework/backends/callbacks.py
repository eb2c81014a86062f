"""What a callback send must find, whichever store keeps it: one check, so both stores answer alike."""

from __future__ import annotations

import secrets

from framework.core.callbacks import CallbackId
from framework.core.records import FINISHED, EntryKind, EntryStatus, InstanceRecord, JournalEntry
from framework.errors import CallbackCompletedError, CallbackNotFoundError


def check_callback(callback: CallbackId, current: InstanceRecord | None, entry: JournalEntry | None) -> None:
    """Raise unless ``entry`` (the journal entry at the id's seq, in the instance's current run) is the
    waiting callback the id names. What does not match is CallbackNotFoundError, checked before any
    state, so that an id with a wrong token learns nothing of the callback; a callback that has its
    outcome, or an instance that finished, is CallbackCompletedError."""
    if current is None:
        raise CallbackNotFoundError("no waiting callback has this id: its instance does not exist")
    if current.run != callback.run:
        raise CallbackNotFoundError(
            f"the callback id is of run {callback.run} of instance {current.id!r}, which is on run "
            f"{current.run}: a restart makes the callback ids of earlier runs invalid"
        )
    token = entry.extra.get("token") if entry is not None else None
    if (
        entry is None
        or entry.kind is not EntryKind.CALLBACK
        or not isinstance(token, str)
        or not secrets.compare_digest(token, callback.token)
    ):
        raise CallbackNotFoundError(f"no callback of instance {current.id!r} has this id")
    if current.status in FINISHED:
        raise CallbackCompletedError(
            f"instance {current.id!r} is {current.status}: its callbacks take nothing"
        )
    if entry.status is not EntryStatus.WAITING:
        raise CallbackCompletedError(f"callback {entry.name!r} is {entry.status.value} already")


def already_sent(callback: CallbackId) -> CallbackCompletedError:
    return CallbackCompletedError(
        f"an outcome was sent to this callback of instance {callback.instance_id!r} already; the first one "
        "counts"
    )
