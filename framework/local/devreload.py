"""Reload for ``workflows dev``: notice that a workflow module's file changed, and load the new code.

What is watched: the files of the modules that importing the workflow modules brought in (the workflow
modules and what they import, but not ``framework`` itself) that lie under the project folder (the one
dev was started in) and outside any ``site-packages``. Each ``poll`` compares their modification
times (and sizes) with the last ones seen: polling, so no dependency and no file-system events.

How new code is loaded: :func:`reimport` imports the modules again in the dev process (the HTTP API
checks params with them), then dev starts new worker processes, which import the new code, and asks
the old ones to stop once their batch is done (``framework.local.dev``). An instance in flight is not
lost: its invocation finishes on the old code, or, if a worker is killed, comes back as after a crash.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import framework
from framework.api.registry import load_modules
from framework.local import devpool

FRAMEWORK = Path(framework.__file__).resolve().parent
RELOAD_EVERY = 1.0  # seconds between looks at the watched files' modification times


def _file_of(name: str) -> Path | None:
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


class Watcher:
    """The files of the modules ``names`` under ``root``, and their last seen state."""

    def __init__(self, root: Path, names: Iterable[str]) -> None:
        self.root = root.resolve()
        self.modules = [n for n in names if self._watched(_file_of(n))]
        self._seen = self._stat()

    def _watched(self, path: Path | None) -> bool:
        return (
            path is not None
            and path.suffix == ".py"
            and path.is_relative_to(self.root)
            and not path.is_relative_to(FRAMEWORK)
            and "site-packages" not in path.parts
        )

    @property
    def files(self) -> list[Path]:
        return [p for p in (_file_of(n) for n in self.modules) if p is not None]

    def _stat(self) -> dict[Path, tuple[int, int] | None]:
        state: dict[Path, tuple[int, int] | None] = {}
        for path in self.files:
            try:
                st = os.stat(path)
                state[path] = (st.st_mtime_ns, st.st_size)
            except OSError:  # deleted, or being replaced by an editor: a change
                state[path] = None
        return state

    def poll(self) -> list[Path]:
        """The watched files that changed since the last poll (or since the watcher was made)."""
        now = self._stat()
        changed = [p for p, st in now.items() if self._seen.get(p) != st]
        self._seen = now
        return changed

    def rewatch(self, names: Iterable[str]) -> None:
        """Watch ``names`` from now on (the modules that the last import brought in)."""
        self.modules = [n for n in names if self._watched(_file_of(n))]
        self._seen = self._stat()


def imported_by(modules: str) -> tuple[list[str], Exception | None]:
    """Import ``modules`` (comma-separated) and return the names of the modules this brought into
    ``sys.modules``, and what the import raised (None: it worked)."""
    before = set(sys.modules)
    try:
        load_modules(modules)
    except Exception as exc:
        return sorted(set(sys.modules) - before), exc
    return sorted(set(sys.modules) - before), None


def reimport(watched: list[str], modules: str) -> tuple[list[str], Exception | None]:
    """Import ``modules`` again, with the ``watched`` modules read afresh from their files; return the
    modules to watch from now on and the error (None: it worked). If the import raises, the module
    objects as they were are put back in ``sys.modules`` (the workflows that the failed import had
    registered anew before its error stay so) and the error is returned."""
    old = {name: sys.modules.pop(name) for name in watched if name in sys.modules}
    names, error = imported_by(modules)
    if error is not None:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(old)
        return list(old), error
    return sorted(set(names) | (set(old) & set(sys.modules))), None


def ticker(
    workers: devpool.Workers,
    watcher: Watcher | None,
    modules: str,
    api_lock: threading.Lock,
    stop: threading.Event,
    out: TextIO,
) -> Callable[[], None]:
    """What the main loop calls: replace dead workers; every RELOAD_EVERY seconds, look at the watched
    files, and on a change load the new code: here first (with no API request in flight), then in a
    new set of workers. A change that fails to import keeps the code that runs, until the next change."""
    next_look = time.monotonic() + RELOAD_EVERY

    def tick() -> None:
        nonlocal next_look
        workers.check()
        if watcher is None or time.monotonic() < next_look:
            return
        next_look = time.monotonic() + RELOAD_EVERY
        changed = watcher.poll()
        if not changed:
            return
        names = ", ".join(str(p.relative_to(watcher.root)) for p in changed)
        with api_lock:
            watched, error = reimport(watcher.modules, modules)
        if error is not None:
            print(
                f"workflows dev: reload failed, the code before the change still runs: {names}: "
                f"{type(error).__name__}: {error}",
                file=sys.stderr,
                flush=True,
            )
            return
        try:
            workers.replace_all(stop)
        except devpool.DevError as exc:
            print(f"workflows dev: reload failed, the workers before it still run: {exc}", file=sys.stderr)
            return
        watcher.rewatch(watched)
        pids = ", ".join(str(p.pid) for p in workers.procs)
        print(f"workflows dev: reloaded ({names} changed); workers (pids {pids})", file=out, flush=True)

    return tick
