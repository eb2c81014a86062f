"""A worker process of ``workflows dev``: polls the work queue and calls the worker handler, as Lambda's
event source mapping does for one container, until its dev process stops it (SIGTERM) or dies."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time

from framework.api.registry import load_modules
from framework.local.dev import IDLE, DevOptions, DevRuntime
from framework.local.devaws import SerialSender, lock_path
from framework.local.runtime import WORK_QUEUE


def _exit_with(parent: int) -> None:
    """Die with the dev process, even a SIGKILLed one, where this worker stands: its invocation in flight
    is then a crash, as for a Lambda container that dies with its host."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Run one worker. ``argv[0]`` is the JSON that the dev process passes (options, endpoint, ...);
    ``argv[1]``, if given, a pipe to write to once the worker polls."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    # The dev process decides when its workers stop, and tells them with SIGTERM: each then finishes its
    # invocation in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_exit_with, args=(spec["parent"],), daemon=True).start()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # its logs share the dev process's output
    try:
        load_modules(spec["modules"])
        sender = SerialSender(lock_path(spec["endpoint"]))
        with DevRuntime(DevOptions(**spec["options"]), spec["endpoint"], sender) as rt:
            if len(args) > 1:
                os.write(int(args[1]), b"1")
                os.close(int(args[1]))
            rt.run_forever(stop, queues=[WORK_QUEUE], idle=IDLE)
    except Exception as exc:
        print(f"workflows dev worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
