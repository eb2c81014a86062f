"""``workflows dev`` and ``workflows demo``: the local stack, and the demo on in-process moto."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path
from typing import Any

from framework.cli.options import CliError, _number, _prefix


def cmd_demo(args: argparse.Namespace) -> None:
    path = Path(args.path)
    if not path.is_file():
        raise CliError(f"no demo script at {path} (run from the project root, or give a path)")
    sys.path.insert(0, str(Path.cwd()))
    runpy.run_path(str(path), run_name="__main__")


def cmd_dev(args: argparse.Namespace) -> None:
    try:
        from framework.local.dev import DevError, DevOptions, run
    except ImportError as exc:  # moto and PyYAML come with the `local` extra
        raise CliError(f"dev needs the local extra: pip install 'lambda-workflows[local]' ({exc})") from None
    options = DevOptions(
        port=args.port,
        workers=args.workers,
        modules=args.dev_modules or args.modules,
        endpoint_url=args.dev_endpoint_url or args.endpoint_url,
        prefix=args.prefix,
        template=args.template,
        sweep_every=args.sweep_every,
        worker_timeout=args.worker_timeout,
        visibility_timeout=args.visibility_timeout,
        fast=args.fast,
        reload=args.reload,
    )
    try:
        run(options)
    except DevError as exc:
        raise CliError(str(exc)) from None


def add_dev_parser(commands: Any) -> None:
    """The ``dev`` command's parser: its options are its own, not the global ones."""
    dev = commands.add_parser(
        "dev",
        help="serve the stack locally: moto, the HTTP API, workers and the sweeper",
        description="Serve the stack of template.yaml on 127.0.0.1 until Ctrl-C (docs/local-testing.md).",
    )
    dev.set_defaults(run=cmd_dev)
    dev.add_argument("--port", type=_number(int, 0, 65535), default=8787, help="HTTP port (0: any free)")
    dev.add_argument("--workers", type=_number(int, 1), default=2, help="worker processes (default: 2)")
    dev.add_argument(
        "--modules",
        dest="dev_modules",
        help="workflow modules (default: $WORKFLOW_MODULES, else the template's)",
    )
    dev.add_argument(
        "--endpoint-url",
        dest="dev_endpoint_url",
        help="use this running endpoint (a moto_server) instead of starting one",
    )
    dev.add_argument("--prefix", type=_prefix, default="dev", help="resource name prefix (default: dev)")
    dev.add_argument("--template", help="the SAM template (default: ./template.yaml or above)")
    dev.add_argument("--sweep-every", type=_number(float, 0.1), help="seconds (default: the schedule)")
    dev.add_argument(
        "--worker-timeout",
        type=_number(int, 1, 900),
        help="the worker's Lambda timeout, s (default: template)",
    )
    dev.add_argument(
        "--visibility-timeout",
        type=_number(int, 1, 43200),
        help="the work queue's visibility for dev's receives, s (default: the queue's)",
    )
    dev.add_argument(
        "--fast",
        action="store_true",
        help="every new wait lasts 1/3600 of its time: an hour, a second (docs/local-testing.md)",
    )
    dev.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="do not reload the workflow modules when their files change",
    )
