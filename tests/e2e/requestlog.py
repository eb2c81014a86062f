"""Loaded as a workflow module (``--modules ...,tests.e2e.requestlog``) in dev's process and its workers:
every request that a boto3 client of the default session sends (the clients that workflows make with
``boto3.client``) is noted in the file that ``REQUEST_LOG`` names, as ``<pid> <method> <url>``."""

from __future__ import annotations

import os
from typing import Any

import boto3

boto3.setup_default_session()
assert boto3.DEFAULT_SESSION is not None


def _note(request: Any, **_: Any) -> None:
    with open(os.environ["REQUEST_LOG"], "a") as log:
        log.write(f"{os.getpid()} {request.method} {request.url}\n")


boto3.DEFAULT_SESSION.events.register("before-send", _note)
