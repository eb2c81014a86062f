"""The worker processes of ``workflows dev``: started, replaced when one dies (as Lambda replaces a
container), replaced all at once when the code changed (reload), and stopped."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

STOP_GRACE = 10.0  # seconds that workers get to finish their batch on Ctrl-C, before they are killed
CRASH_LOOP_SECONDS = 5.0  # a worker that exits sooner after its start is broken, not unlucky
READY_SECONDS = 60.0  # how long a worker may take to import and find the stack


class DevError(Exception):
    """A one-line problem for the user: a port in use, an unreachable endpoint, a bad option."""


class Workers:
    """``count`` worker processes running ``argv`` (plus, at a start, the pipe to write to once ready)."""

    def __init__(self, count: int, argv: list[str]) -> None:
        self._count, self._argv = count, argv
        self.procs: list[subprocess.Popen[bytes]] = []
        self._started: list[float] = []
        self.retiring: list[subprocess.Popen[bytes]] = []  # replaced by a reload, finishing their batch

    def _spawn(self, ready_fd: int | None = None) -> subprocess.Popen[bytes]:
        extra, fds = ([str(ready_fd)], (ready_fd,)) if ready_fd is not None else ([], ())
        # A session of its own: Ctrl-C in a terminal signals the whole foreground process group, and the
        # dev process alone decides when its workers stop (SIGTERM, then SIGKILL after STOP_GRACE).
        return subprocess.Popen(
            [*self._argv, *extra], stdin=subprocess.DEVNULL, pass_fds=fds, start_new_session=True
        )

    def _start_ready(self, stop: threading.Event) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` workers and wait until each one polls (it writes to a pipe then). Return them,
        or raise DevError (those started are killed). Return early if ``stop`` is set."""
        procs: list[subprocess.Popen[bytes]] = []
        pipes: list[int] = []
        try:
            for _ in range(self._count):
                read, write = os.pipe()
                procs.append(self._spawn(write))
                os.close(write)
                pipes.append(read)
            deadline = time.monotonic() + READY_SECONDS
            for proc, read in zip(procs, pipes, strict=True):
                while not select.select([read], [], [], 0.2)[0]:
                    if stop.is_set():
                        return procs
                    if time.monotonic() > deadline:
                        raise DevError(f"worker {proc.pid} is not ready after {READY_SECONDS:.0f} s")
                if not os.read(read, 1):  # the pipe closed: the worker died as it started
                    raise DevError(
                        f"worker {proc.pid} exited with code {proc.wait()} as it started (see above)"
                    )
        except BaseException:
            for proc in procs:
                _kill(proc)
            raise
        finally:
            for read in pipes:
                os.close(read)
        return procs

    def start(self, stop: threading.Event) -> None:
        """Start the workers, ready when this returns (see ``_start_ready``)."""
        self.procs = self._start_ready(stop)
        self._started = [time.monotonic()] * len(self.procs)

    def replace_all(self, stop: threading.Event) -> None:
        """Start a new set of workers (new code), then ask the current ones to stop once their batch is
        done (SIGTERM). If the new ones cannot start, raise DevError and keep the current ones."""
        fresh = self._start_ready(stop)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        self.retiring += self.procs
        self.procs, self._started = fresh, [time.monotonic()] * len(fresh)

    def check(self) -> None:
        """Replace a worker that died; reap the retiring ones that finished."""
        self.retiring = [p for p in self.retiring if p.poll() is None]
        for i, proc in enumerate(self.procs):
            code = proc.poll()
            if code is None:
                continue
            if time.monotonic() - self._started[i] < CRASH_LOOP_SECONDS:
                raise DevError(f"worker {proc.pid} exited with code {code} soon after it started (see above)")
            print(f"workflows dev: worker {proc.pid} exited ({code}); starting another", file=sys.stderr)
            self.procs[i] = self._spawn()
            self._started[i] = time.monotonic()

    def stop(self, force: threading.Event) -> None:
        """Ask every worker to finish its invocation and stop (SIGTERM); kill those still busy after
        ``STOP_GRACE``, or at once when ``force`` is set (a second Ctrl-C). A killed invocation is a
        crash: its instance resumes after its lease."""
        every = self.procs + self.retiring
        for proc in every:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        while any(p.poll() is None for p in every) and time.monotonic() < deadline:
            if force.wait(0.05):
                break
        for proc in every:
            if proc.poll() is None:
                _kill(proc)
                print(
                    f"workflows dev: worker {proc.pid} was still busy and was killed; its instance "
                    "resumes once its lease expires (docs/local-testing.md)",
                    file=sys.stderr,
                )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
