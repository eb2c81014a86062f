"""The ``workflows`` command: start, inspect and manage instances from a terminal.

It talks to AWS through ``WorkflowClient`` with the standard AWS configuration: the table and queue
come from ``--table``/``--queue-url`` or WORKFLOWS_TABLE/WORKFLOWS_QUEUE_URL, and ``--endpoint-url``
points it at a local stack. With ``--api-url`` (or WORKFLOWS_API_URL) it goes through the HTTP API
instead (``ApiClient``: SigV4-signed for an AWS URL). ``--json`` prints machine-readable output.
Errors print one line and exit 1. ``workflows dev`` serves the whole stack on 127.0.0.1
(``framework.local.dev``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from framework.api.registry import load_modules
from framework.cli.dev import add_dev_parser, cmd_demo
from framework.cli.options import CliError, _number, _read_json
from framework.cli.schedules import add_schedules_parser
from framework.errors import ApiError, WorkflowError
from framework.manage.api_client import ApiClient
from framework.manage.client import InstanceStatus, WaitStatus, WorkflowClient
from framework.manage.history_pages import DEFAULT_LIMIT, MAX_LIMIT
from framework.manage.timeline import format_timeline

DIRECT = ("table", "queue_url", "bucket", "endpoint_url")  # the options of the direct path, not the API's


def _client(args: argparse.Namespace) -> WorkflowClient | ApiClient:
    """Through the HTTP API with ``--api-url`` (or WORKFLOWS_API_URL), else on the table and queue."""
    api_url = _api_url(args)
    if api_url is not None:
        args.dev = None
        try:
            return ApiClient(api_url)
        except ValueError as exc:
            raise CliError(f"--api-url: {exc}") from None
    _load(args)
    table = args.table or os.environ.get("WORKFLOWS_TABLE")
    queue = args.queue_url or os.environ.get("WORKFLOWS_QUEUE_URL")
    bucket = args.bucket or os.environ.get("WORKFLOWS_BUCKET")
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    dev = None
    if not table or not queue:  # a running `workflows dev` (that serves --endpoint-url): its stack
        dev = _find_dev(args.endpoint_url)
        if dev is not None:
            table, queue, bucket, endpoint = dev.table, dev.queue_url, bucket or dev.bucket, dev.endpoint_url
    elif endpoint:  # a stack named in full: dev's only if it is on dev's endpoint
        dev = _find_dev(endpoint)
        dev = dev if dev is not None and dev.serves(endpoint) else None
    if not table or not queue:
        where = f" (no running workflows dev serves {args.endpoint_url})" if args.endpoint_url else ""
        raise CliError(
            f"give --table and --queue-url, or set WORKFLOWS_TABLE and WORKFLOWS_QUEUE_URL, or run "
            f"workflows dev{where}"
        )
    if dev is not None:
        _through_dev(dev)
    args.dev = dev
    return WorkflowClient(table, queue, bucket_name=bucket, endpoint_url=endpoint)


def _api_url(args: argparse.Namespace) -> str | None:
    """``--api-url``, which takes none of the options of the direct path; else WORKFLOWS_API_URL, unless
    one of them is given (an option given on the command line outweighs the environment)."""
    direct = [f"--{name.replace('_', '-')}" for name in DIRECT if getattr(args, name, None)]
    if args.api_url:
        if direct:
            raise CliError(f"--api-url goes through the HTTP API: give it without {', '.join(direct)}")
        return str(args.api_url)
    return None if direct else os.environ.get("WORKFLOWS_API_URL") or None


def _find_dev(url: str | None) -> Any:
    """The running ``workflows dev`` found from here (``framework.local.devfile``), one that serves
    ``url`` if given; None without one, or without the local extra."""
    try:
        from framework.local import devfile
    except ImportError:  # pragma: no cover - the local extra is not installed: no dev either
        return None
    return devfile.find(url=url)


def _through_dev(dev: Any) -> None:
    """Reach dev's endpoint as dev's own processes do: its region and fake credentials, and each call
    through its lock (``framework.local.devaws``), so that the command's writes never race dev's on
    moto."""
    import boto3

    from framework.local.devaws import SerialSender, lock_path

    for name, value in dev.environment().items():
        if name.startswith("AWS_"):
            os.environ[name] = value
    for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        os.environ.pop(name, None)
    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-send", SerialSender(lock_path(dev.endpoint_url)))


def _wait_line(wait: WaitStatus) -> str:
    """One wait, as ``workflows status`` prints it."""
    line = f"{wait.kind} {wait.name!r}"
    if wait.event_type is not None:
        line += f" for event {wait.event_type!r}"
    if wait.attempt is not None:
        line += f", attempt {wait.attempt} next"
    if wait.child_id is not None:
        line += f", child {wait.child_id}"
    if wait.until is None:
        return f"{line}, no deadline"
    return f"{line}, until {wait.until.isoformat(timespec='seconds')}"


def _print_status(args: argparse.Namespace, status: InstanceStatus) -> None:
    if args.json:
        print(json.dumps(status.as_dict(), default=str))
        return
    version = "" if status.version is None else f"  version {status.version}"
    print(f"{status.id}  {status.workflow}  {status.status}{version}")
    for wait in status.waits:
        print(f"waiting: {_wait_line(wait)}")
    for step in status.running_steps:
        since = step.started_at.isoformat(timespec="seconds")
        print(f"running: step {step.name!r}, attempt {step.attempt}, since {since}")
    c = status.counts
    if any(c.values()):
        print(f"steps: {c['steps_done']} done, {c['steps_failed']} failed; {c['retries']} retries, "
              f"{c['failures']} failures")  # fmt: skip
    if status.error:
        print(f"error: {status.error['name']}: {status.error['message']}")
    elif status.output is not None:
        print(f"output: {json.dumps(status.output, default=str)}")


def _accepted(args: argparse.Namespace, instance_id: str, what: str) -> None:
    status = _client(args).get(instance_id).status()  # the same stack: the same options
    if args.json:
        print(json.dumps({"id": instance_id, "status": status.status.value, "done": what}))
    else:
        print(f"{instance_id}: {what}; now {status.status}")


def cmd_start(args: argparse.Namespace) -> None:
    client = _client(args)
    inst = client.create(args.name, _read_json(args.params, "--params"), id=args.id)
    # An id that holds the same workflow and params already is success too: that instance, as it is.
    status = "queued" if inst.created else inst.status().status.value
    if not inst.created and not args.json:
        print(
            f"{inst.id} exists with the same workflow and params ({status}): not started again",
            file=sys.stderr,
        )
    print(json.dumps({"id": inst.id, "status": status, "created": inst.created}) if args.json else inst.id)


def cmd_status(args: argparse.Namespace) -> None:
    _print_status(args, _client(args).get(args.id).status())


def cmd_history(args: argparse.Namespace) -> None:
    """With ``--limit`` or ``--cursor``: one page, and the cursor of the next. Else every page, printed
    as it is read. Results only with ``--results``."""
    inst = _client(args).get(args.id)
    status = inst.status()
    if args.limit is not None or args.cursor is not None:
        pages: Any = [inst.history_page(args.limit or DEFAULT_LIMIT, args.cursor, results=args.results)]
    else:
        pages = inst.history_pages(results=args.results)
    entries: list[dict[str, Any]] = []
    cursor = args.cursor
    for page in pages:
        if args.json:
            entries += [e.as_dict() for e in page.entries]
        else:
            text = format_timeline(status, page.entries, first=cursor is None, last=page.cursor is None)
            if text:
                print(text)
        cursor = page.cursor
    if args.json:
        print(json.dumps({"id": args.id, "entries": entries, "cursor": cursor}, default=str))
    elif cursor is not None:
        print(f"more: workflows history {args.id} --cursor {cursor}")


def cmd_event(args: argparse.Namespace) -> None:
    _client(args).get(args.id).send_event(args.type, _read_json(args.payload, "--payload"))
    _accepted(args, args.id, f"event {args.type!r} sent")


def cmd_control(args: argparse.Namespace) -> None:
    options = {"rollback": True} if getattr(args, "rollback", False) else {}
    getattr(_client(args).get(args.id), args.command)(**options)
    _accepted(args, args.id, f"{args.command} requested")


def cmd_skip(args: argparse.Namespace) -> None:
    client = _client(args)
    local = "skip is for local stacks: run it against workflows dev"
    if isinstance(client, ApiClient):  # dev's own route: POST /dev/instances/{id}/skip
        if client.signing is not None:
            raise CliError(f"{local}; an API on AWS has no skip route")
        try:
            client.get(args.id).skip_wait()
        except ApiError as exc:
            if (exc.status, exc.error) != (404, "NotFound"):
                raise
            raise CliError(f"{local}: this API has no skip route (workflows dev's has)") from None
    elif args.dev is None and not (args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")):
        raise CliError(f"{local} (or give --endpoint-url)")
    else:
        client.get(args.id).skip_wait()
    _accepted(args, args.id, "wait skipped")


def cmd_callback(args: argparse.Namespace) -> None:
    client = _client(args)
    if args.action == "success":
        client.send_callback_success(args.callback_id, args.result)
    elif args.action == "failure":
        client.send_callback_failure(args.callback_id, args.error_type, args.message)
    else:
        client.send_callback_heartbeat(args.callback_id)
    if args.json:
        print(json.dumps({"callback_id": args.callback_id, "sent": args.action}))
    else:
        print(f"callback {args.action} sent")


def _direct(args: argparse.Namespace, what: str) -> WorkflowClient:
    """The client on the table itself: ``what`` reads the journal, which the HTTP API does not serve."""
    client = _client(args)
    if not isinstance(client, WorkflowClient):
        raise CliError(
            f"{what} reads the table itself: give --table and --queue-url (or run it by dev), not --api-url"
        )
    return client


def cmd_export(args: argparse.Namespace) -> None:
    text = json.dumps(_direct(args, "export").get(args.id).export())
    if args.output in (None, "-"):
        print(text)
        return
    try:
        Path(args.output).write_text(text + "\n")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror}") from None
    print(f"{args.id}: history written to {args.output}", file=sys.stderr)


def cmd_replay_check(args: argparse.Namespace) -> int:
    """Replay exported files, else the table's instances, against the workflow code loaded now
    (framework.manage.replay_check); exit 1 if any history no longer replays."""
    from framework.api.registry import REGISTRY
    from framework.manage import replay_check

    if args.files:
        _load(args)
        documents: Any = (replay_check.read_export(f) for f in args.files)
    else:
        documents = replay_check.table_exports(
            _direct(args, "replay-check"), args.workflow, every=args.all, limit=args.limit
        )
    results = [replay_check.check_history(document, REGISTRY) for document in documents]
    failed = sum(not r.ok for r in results)
    if args.json:
        print(
            json.dumps({"checked": len(results), "failed": failed, "results": [r.as_dict() for r in results]})
        )
    else:
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'} {r.instance_id} ({r.workflow}): {r.message}")
        print(f"{len(results)} histories replayed, {failed} failed")
    return 1 if failed else 0


def _load(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path.cwd()))
    if args.modules or os.environ.get("WORKFLOW_MODULES"):
        load_modules(args.modules or os.environ["WORKFLOW_MODULES"])


def _json_value(text: str) -> Any:
    """An argparse type: JSON text, or ``@`` and a file to read it from; else a usage error (exit 2)."""
    try:
        return _read_json(text, "the result")
    except CliError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_list(args: argparse.Namespace) -> None:
    page = _client(args).list(
        workflow=args.workflow, status=args.status, limit=args.limit, cursor=args.cursor
    )
    if args.json:
        print(
            json.dumps(
                {"instances": [i.as_dict() for i in page.instances], "cursor": page.cursor}, default=str
            )
        )
        return
    for inst in page.instances:
        print(f"{inst.id}  {inst.workflow}  {inst.status}  {inst.created_at.isoformat(timespec='seconds')}")
    if page.cursor:
        print(f"more: --cursor {page.cursor}")


def cmd_versions(args: argparse.Namespace) -> None:
    found = _client(args).versions(args.name)
    if args.json:
        print(json.dumps({"workflow": args.name, "versions": [v.as_dict() for v in found]}))
        return
    for v in found:
        shown = "(none)" if v.version is None else v.version
        code = "registered" if v.registered else "not in this code"
        print(f"{shown}  {v.in_flight} in flight  {code}")


def _callback_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """``callback success|failure|heartbeat CALLBACK_ID ...``: one subcommand per kind of send."""
    callback = commands.add_parser("callback", help="send a callback its result, failure or heartbeat")
    actions = callback.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("success", "complete a callback with a result"),
        ("failure", "fail a callback"),
        ("heartbeat", "keep a callback with a heartbeat timeout alive"),
    ):
        sub = actions.add_parser(action, parents=[common], help=help_text)
        sub.set_defaults(run=cmd_callback)
        sub.add_argument("callback_id", metavar="CALLBACK_ID")
        if action == "success":
            sub.add_argument(
                "result",
                metavar="RESULT_JSON",
                nargs="?",
                type=_json_value,
                help="JSON, or @file (default: null)",
            )
        elif action == "failure":
            sub.add_argument("--error-type", required=True, help="the error's name, 1 to 256 characters")
            sub.add_argument("--message", default="", help="at most 4096 characters (default: none)")


def _history_parsers(command: Any) -> None:
    """``export ID`` and ``replay-check [FILE ...]``: the pre-deploy replay gate."""
    export = command("export", cmd_export, "write an instance's recorded history, for replay-check")
    export.add_argument("id")
    export.add_argument("--output", "-o", help="the file to write (default: standard output)")
    check = command("replay-check", cmd_replay_check, "replay recorded histories against the code")
    check.add_argument("files", nargs="*", metavar="FILE", help="exports to replay (default: the table's)")
    check.add_argument("--workflow", help="only this workflow's instances (from the table)")
    check.add_argument("--all", action="store_true", help="finished instances too (from the table)")
    check.add_argument("--limit", type=_number(int, 1), default=1000, help="at most this many (1000)")


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name: on the root parser with their
    defaults, and on each command's with none (``suppress``), so that an option given before the
    command is not reset by the command's parser."""

    def add(*names: str, **kwargs: Any) -> None:
        extra: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
        parser.add_argument(*names, **kwargs, **extra)

    add("--json", action="store_true", help="print JSON")
    add("--api-url", help="go through this HTTP API (default: $WORKFLOWS_API_URL); signed for AWS")
    add("--endpoint-url", help="an AWS-compatible endpoint, for example a local stack")
    add("--table", help="the table (default: $WORKFLOWS_TABLE, else a running workflows dev's)")
    add("--queue-url", help="the work queue (default: $WORKFLOWS_QUEUE_URL, else a running dev's)")
    add("--bucket", help="the results bucket (default: $WORKFLOWS_BUCKET, else a running dev's)")
    add("--modules", help="workflow modules to import (default: $WORKFLOW_MODULES)")
    return parser


def parser() -> argparse.ArgumentParser:
    common = _global_options(argparse.ArgumentParser(add_help=False), suppress=True)
    root = _global_options(
        argparse.ArgumentParser(prog="workflows", description="Durable workflows on AWS Lambda."),
        suppress=False,
    )
    commands = root.add_subparsers(dest="command", required=True)

    def command(name: str, run: Any, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help_text)
        sub.set_defaults(run=run)
        return sub

    start = command("start", cmd_start, "start an instance")
    start.add_argument("name")
    start.add_argument("--id")
    start.add_argument("--params", help="JSON, or @file")
    command("status", cmd_status, "show an instance's status").add_argument("id")
    history = command("history", cmd_history, "show an instance's timeline")
    history.add_argument("id")
    history.add_argument(
        "--limit", type=_number(int, 1, MAX_LIMIT), help="one page of at most this many entries"
    )
    history.add_argument("--cursor", help="the page after the one that printed this cursor")
    history.add_argument("--results", action="store_true", help="show results (default: their sizes)")
    command(
        "skip", cmd_skip, "end an instance's current sleep, retry delay or timeout now (dev)"
    ).add_argument("id")
    event = command("event", cmd_event, "send an event")
    event.add_argument("id")
    event.add_argument("type")
    event.add_argument("--payload", help="JSON, or @file")
    for action in ("pause", "resume", "terminate", "restart"):
        control = command(action, cmd_control, f"{action} an instance")
        control.add_argument("id")
        if action == "terminate":
            control.add_argument(
                "--rollback", action="store_true", help="run the registered undos first, then terminate"
            )
    _callback_parser(commands, common)
    _history_parsers(command)
    add_schedules_parser(commands, common, _client)
    listing = command("list", cmd_list, "list instances, newest first")
    listing.add_argument("--workflow")
    listing.add_argument("--status")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor")
    versions = command("versions", cmd_versions, "a workflow's code versions and instances left on each")
    versions.add_argument("name")
    add_dev_parser(commands)
    demo = command("demo", cmd_demo, "run the demo locally (in-process moto, virtual clock)")
    demo.add_argument(
        "path", nargs="?", default="examples/demo.py", help="demo script (default: %(default)s)"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.run(args)  # a command may answer its own exit status (replay-check: 1 on a failure)
    except (CliError, WorkflowError, ValueError) as exc:
        name = "" if isinstance(exc, CliError) else f"{type(exc).__name__}: "
        print(f"workflows: {name}{exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore's errors (no credentials, unreachable endpoint, ...)
        print(f"workflows: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
