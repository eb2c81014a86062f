"""``workflows dev`` as a user runs it, for tests and benchmarks: a subprocess driven over its HTTP API
only, stopped with a signal. Nothing here reaches into the dev process; what it does is seen over HTTP
and in its output files."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from framework.local import devfile

T = TypeVar("T")

READY_SECONDS = 30.0  # how long dev may take to print its banner (its workers polling)
HTTP_SECONDS = 30.0  # the timeout of one HTTP request to dev


class DevProcess:
    """One ``workflows dev`` process, started at once with ``args`` (its command-line options) and
    ``--modules modules``, in ``cwd`` (also its PYTHONPATH), with ``env`` added to this process's
    environment. Its output goes to ``<logs>/<name>.out`` and ``.err`` (a full pipe would block it).

    The constructor returns once dev printed its API's URL and its workers' pids (``url``,
    ``worker_pids``), and raises AssertionError if it exits first or takes over ``ready_seconds``
    (the process is then killed). As a context manager it is killed (SIGKILL) on exit if still running.
    """

    def __init__(
        self,
        logs: Path,
        name: str,
        *args: str,
        modules: str,
        cwd: Path | None = None,
        ready_seconds: float = READY_SECONDS,
        **env: str,
    ) -> None:
        self.out, self.err = logs / f"{name}.out", logs / f"{name}.err"
        root = self.cwd = cwd or Path.cwd()
        environ = dict(os.environ, PYTHONPATH=str(root), POWERTOOLS_LOG_LEVEL="WARNING") | env
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "framework.cli", "dev", "--modules", modules, *args],
                cwd=root,
                env=environ,
                stdout=out,
                stderr=err,
            )
        try:
            self.url = self._wait_for(r"API:\s+(http://\S+)", ready_seconds)
            pids = self._wait_for(r"pids ([\d, ]+)\)", ready_seconds)
        except BaseException:
            self.kill()
            raise
        self.worker_pids = [int(p) for p in pids.split(", ")]

    def __enter__(self) -> DevProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.kill()

    def _wait_for(self, pattern: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = re.search(pattern, self.out.read_text())
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                raise AssertionError(f"dev exited: {self.err.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the output:\n{self.out.read_text()}")

    def send(self, method: str, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        """``data`` with ``headers`` and no others (urllib would add a Content-Type): the status and the
        JSON body."""
        parts = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=HTTP_SECONDS)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``body`` (None: no body) as JSON: the status and the JSON body, errors included."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_SECONDS) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def instances(self, workflow: str, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every instance of ``workflow``, newest first, following the list's cursor ``page`` at a time.
        Raises AssertionError if a page is not a 200."""
        query: dict[str, Any] = {"limit": page}
        while True:
            path = f"/workflows/{urllib.parse.quote(workflow)}/instances?{urllib.parse.urlencode(query)}"
            status, body = self.call("GET", path)
            if status != 200:
                raise AssertionError(f"listing {workflow!r} answered {status}: {body}")
            yield from body["instances"]
            if not body["cursor"]:
                return
            query["cursor"] = body["cursor"]

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Send ``sig`` and return dev's exit code; SIGKILL it if it has not exited after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL dev if it still runs (its workers follow it within 0.2 s), and reap it. Remove the
        discovery files it left (``framework.local.devfile``), if any."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        devfile.remove(devfile.paths(self.cwd, self.proc.pid), self.proc.pid)


def until(what: str, check: Callable[[], T], timeout: float = 30, every: float = 0.2) -> T:
    """The first truthy value of ``check()``, called every ``every`` seconds; AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
