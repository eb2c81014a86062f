"""The discovery file of a running ``workflows dev``: ``.workflows/dev.json`` in the folder it was
started in, so that the ``workflows`` command finds the stack by itself. A copy goes to the temporary
folder (``workflows-dev-<pid>.json``), where the command looks for the dev that serves an
``--endpoint-url`` given from another folder.

dev writes it once its stack serves (atomically: a temporary file renamed over it) and removes it when
it stops, if it is still its own (a second dev started in the same folder replaces it, and the first
one then leaves it alone). A dev process that was killed leaves it behind: :func:`find` takes a file
for a running dev only if its ``pid`` is alive and its API's port on 127.0.0.1 accepts a connection,
and ignores it otherwise. Only the standard library here: the command imports it on every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import urllib.parse
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FOLDER = ".workflows"
NAME = "dev.json"
CREDENTIALS = "testing"  # moto takes any credentials; dev's own processes use these


@dataclass(frozen=True)
class DevStack:
    """What a client needs to reach a running dev stack."""

    pid: int
    api_url: str
    endpoint_url: str
    region: str
    table: str
    queue_url: str
    inbox_url: str
    bucket: str
    prefix: str

    def environment(self) -> dict[str, str]:
        """The environment variables that point a boto3 client, the AWS CLI and ``workflows`` at it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": CREDENTIALS,
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS,
            "WORKFLOWS_TABLE": self.table,
            "WORKFLOWS_QUEUE_URL": self.queue_url,
            "WORKFLOWS_BUCKET": self.bucket,
        }

    def serves(self, url: str) -> bool:
        """``url`` is this stack's endpoint or API (a trailing slash aside, ``localhost`` as 127.0.0.1)."""
        return _same(url, self.endpoint_url) or _same(url, self.api_url)


def _same(a: str, b: str) -> bool:
    def norm(url: str) -> tuple[str, str, int | None]:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname or ""
        return parts.scheme, host, parts.port

    return norm(a) == norm(b)


def path_in(folder: Path) -> Path:
    return folder / FOLDER / NAME


def _registered(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"workflows-dev-{pid}.json"


def paths(folder: Path, pid: int) -> list[Path]:
    """Where the dev process ``pid`` started in ``folder`` writes its discovery file and its copy."""
    return [path_in(folder), _registered(pid)]


def write(folder: Path, stack: DevStack) -> list[Path]:
    """Write ``stack`` as the discovery file of ``folder``, and its copy in the temporary folder;
    return both paths."""
    paths = [path_in(folder), _registered(stack.pid)]
    paths[0].parent.mkdir(exist_ok=True)
    for path in paths:
        temporary = path.with_name(f".{path.name}.{stack.pid}")
        temporary.write_text(json.dumps(asdict(stack), indent=2) + "\n")
        temporary.replace(path)
    return paths


def remove(paths: list[Path], pid: int) -> None:
    """Remove the discovery files at ``paths`` that process ``pid`` wrote (not another dev's)."""
    for path in paths:
        stack = _read(path)
        if stack is not None and stack.pid == pid:
            path.unlink(missing_ok=True)


def _read(path: Path) -> DevStack | None:
    try:
        data = json.loads(path.read_text())
        return DevStack(**{f.name: data[f.name] for f in fields(DevStack)})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive(stack: DevStack) -> bool:
    """Its process runs and its API accepts connections (a pid reused by another process does not)."""
    try:
        os.kill(stack.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    parts = urllib.parse.urlsplit(stack.api_url)
    with contextlib.suppress(OSError):
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1).close()
        return True
    return False


def find(start: Path | None = None, url: str | None = None) -> DevStack | None:
    """The running dev stack whose discovery file is in ``start`` (default: the current folder) or the
    nearest folder above it that has one; with ``url``, only one that serves ``url``, found there or
    else in the temporary folder. Stale files (their dev is gone) are ignored."""
    folder = (start or Path.cwd()).resolve()
    paths = [path_in(candidate) for candidate in (folder, *folder.parents)]
    if url is not None:
        paths += sorted(Path(tempfile.gettempdir()).glob("workflows-dev-*.json"))
    for path in paths:
        if not path.is_file():
            continue
        stack = _read(path)
        if stack is not None and (url is None or stack.serves(url)) and alive(stack):
            return stack
    return None
