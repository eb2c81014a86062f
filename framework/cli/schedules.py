"""``workflows schedules``: list the schedules; ``workflows schedules pause NAME`` and ``resume NAME``.

Schedules are declared in code, so the direct path lists those of the modules it loads (``--modules``
or WORKFLOW_MODULES). With none loaded and a running ``workflows dev`` found, it asks dev's HTTP API,
whose process has the workflows; ``--api-url`` goes through an API too.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from framework.manage.api_client import ApiClient
from framework.manage.client import WorkflowClient
from framework.manage.schedules import ScheduleInfo

ClientOf = Callable[[argparse.Namespace], WorkflowClient | ApiClient]


def add_schedules_parser(commands: Any, common: argparse.ArgumentParser, client_of: ClientOf) -> None:
    """Register ``schedules [pause|resume NAME]`` on ``commands``; ``client_of`` makes the command's
    client from its options, as every other command's."""
    parser = commands.add_parser("schedules", parents=[common], help="list, pause or resume schedules")
    parser.set_defaults(run=lambda args: cmd_schedules(args, client_of))
    actions = parser.add_subparsers(dest="action")
    for action in ("pause", "resume"):
        sub = actions.add_parser(action, parents=[common], help=f"{action} a workflow's schedule")
        sub.add_argument("name", metavar="NAME", help="the workflow")


def _through(args: argparse.Namespace, client_of: ClientOf) -> WorkflowClient | ApiClient:
    client = client_of(args)
    dev = getattr(args, "dev", None)
    if isinstance(client, WorkflowClient) and dev is not None and not client.registry.names():
        return ApiClient(dev.api_url)  # dev's own process registers the workflows
    return client


def cmd_schedules(args: argparse.Namespace, client_of: ClientOf) -> None:
    client = _through(args, client_of)
    action = getattr(args, "action", None)
    if action in ("pause", "resume"):
        info = client.pause_schedule(args.name) if action == "pause" else client.resume_schedule(args.name)
        if args.json:
            print(json.dumps(info.as_dict()))
        else:
            print(f"{info.workflow}: schedule {'paused' if info.paused else 'resumed'}; {_when(info)}")
        return
    found = client.schedules()
    if args.json:
        print(json.dumps({"schedules": [s.as_dict() for s in found]}))
        return
    if not found:
        print("no scheduled workflows registered (give --modules, or --api-url)")
    for s in found:
        print(f"{s.workflow}  {_declared(s)}  catch_up={s.catch_up}  {_when(s)}")


def _declared(s: ScheduleInfo) -> str:
    if s.cron is not None:
        return f"cron {s.cron!r} {s.timezone}"
    return f"every {s.every:g} s"


def _when(s: ScheduleInfo) -> str:
    last = "never" if s.last_fire is None else s.last_fire.isoformat(timespec="seconds")
    nxt = "paused" if s.next_fire is None else f"next {s.next_fire.isoformat(timespec='seconds')}"
    return f"{nxt}; last fire {last}"
