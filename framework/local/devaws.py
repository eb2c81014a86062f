"""How the processes of ``workflows dev`` reach AWS: every call through one lock (``SerialSender``, see
``framework.local.dev`` for why) with the socket options of botocore's own clients, and an environment
that sends every other boto3 client of theirs, the workflows' own included, to the local endpoint."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class SerialSender:
    """A botocore ``before-send`` handler that sends each request itself, one at a time across every
    process that uses the same lock file: a thread lock within a process, ``flock`` across processes
    (the kernel drops the lock of a process that dies). See ``framework.local.dev`` for why."""

    def __init__(self, lock_path: str) -> None:
        from botocore.httpsession import URLLib3Session

        self._path = lock_path
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._http = URLLib3Session(socket_options=socket_options())

    def __call__(self, request: Any, **_: Any) -> Any:
        with self._lock:
            if self._file is None:
                self._file = open(self._path, "ab")  # noqa: SIM115 - kept open for the process's life
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
            try:
                return self._http.send(request)
            finally:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the connections and the lock file (a process that ends has no need to)."""
        with self._lock:
            self._http.close()
            if self._file is not None:
                self._file.close()
                self._file = None


def socket_options() -> list[tuple[int, int, int]]:
    """The socket options that botocore's own clients set: TCP_NODELAY always, SO_KEEPALIVE if the AWS
    config asks for it (``tcp_keepalive``). A ``URLLib3Session`` made without them sets none, and each
    call on a keep-alive connection then waits about 40 ms for a delayed ACK (Nagle's algorithm holds
    the body back until the headers are acknowledged)."""
    import botocore.session

    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    if botocore.session.get_session().get_config_variable("tcp_keepalive"):
        options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    return options


def local_aws_environment(endpoint: str, region: str) -> dict[str, str | None]:
    """The environment changes (None: remove) that send every boto3 client of dev's processes to
    ``endpoint`` with fake credentials, the clients that workflows make themselves included: dev's
    functions and workers then never reach real AWS, whatever credentials the shell holds. Service
    endpoints (``AWS_ENDPOINT_URL_<SERVICE>``) and ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` would win
    over ``AWS_ENDPOINT_URL``: they go."""
    changes: dict[str, str | None] = {
        name: None
        for name in os.environ
        if name.startswith("AWS_ENDPOINT_URL_") or name == "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
    }
    return changes | {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": None,
        "AWS_SECURITY_TOKEN": None,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


@contextlib.contextmanager
def environment(changes: dict[str, str | None]) -> Iterator[None]:
    """``os.environ`` with ``changes`` for the block (workers started in it inherit them)."""
    before = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def lock_path(endpoint_url: str) -> str:
    """The lock file that serialises calls to ``endpoint_url``, shared by every dev process using it."""
    digest = hashlib.sha256(endpoint_url.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"workflows-dev-{digest}.lock")
