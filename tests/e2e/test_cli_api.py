"""The `workflows` command with `--api-url`, run as a user runs it, against `workflows dev`'s HTTP API:
every call goes over HTTP (dev prints each request), none to the table or the queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework.local.devprocess import DevProcess, until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProcess]:
    process = DevProcess(
        tmp_path_factory.mktemp("dev"), "dev", "--port", "0", "--workers", "1",
        modules="tests.e2e.devflows", cwd=ROOT,
    )  # fmt: skip
    with process:
        yield process
        process.stop(signal.SIGINT)


def workflows(cwd: Path, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in ``cwd``, a folder with no dev discovery file above it, and no AWS or table in its
    environment: only ``--api-url`` (or WORKFLOWS_API_URL) can lead it to the stack."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKFLOWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "framework.cli", *args],
        cwd=cwd,
        env=clean | {"PYTHONPATH": str(ROOT)} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode == 0) == ok, (result.stdout, result.stderr)
    return result


def test_the_command_drives_an_instance_through_devs_api(dev: DevProcess, tmp_path: Path) -> None:
    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return workflows(tmp_path, "--api-url", dev.url, *args, ok=ok)

    def js(*args: str) -> Any:
        return json.loads(workflows(tmp_path, *args, "--json", "--api-url", dev.url).stdout)  # after it

    started = cli("start", "dev-order", "--id", "orders/2024/7", "--params", '{"item": "book"}')
    assert started.stdout.strip() == "orders/2024/7"
    again = js("start", "dev-order", "--id", "orders/2024/7", "--params", '{"item": "book"}')
    assert again["created"] is False
    until("the event wait", lambda: js("status", "orders/2024/7")["status"] == "waiting", timeout=60)
    status = cli("status", "orders/2024/7").stdout
    assert "orders/2024/7  dev-order  waiting" in status and "waiting: event 'confirm'" in status
    assert "orders/2024/7" in cli("list", "--workflow", "dev-order", "--status", "waiting").stdout
    assert [i["id"] for i in js("list", "--status", "waiting")["instances"]] == ["orders/2024/7"]

    sent = cli("event", "orders/2024/7", "confirm", "--payload", '{"to": "ana"}').stdout
    assert sent.startswith("orders/2024/7: event 'confirm' sent; now ")
    done = until("complete", lambda: (s := js("status", "orders/2024/7"))["status"] == "complete" and s)
    assert done["output"] == {"reserved": "reserved book", "shipped": "shipped to ana"}
    timeline = cli("history", "orders/2024/7").stdout
    assert "instance orders/2024/7 (dev-order): complete" in timeline
    assert "step  'ship': complete" in timeline and "event 'confirm': consumed" in timeline
    paged = js("history", "orders/2024/7", "--limit", "2", "--results")
    assert len(paged["entries"]) == 2 and paged["cursor"]
    assert paged["entries"][0]["result"] == "reserved book"
    everything = js("history", "orders/2024/7")
    assert [e["name"] for e in everything["entries"]] == ["reserve", "nap", "confirm", "confirm", "ship"]

    # The requests reached dev's API, the id as one segment encoded twice.
    requests = dev.out.read_text()
    assert "POST /workflows/dev-order/instances 201" in requests
    assert "GET /instances/orders%252F2024%252F7 200" in requests
    assert "POST /instances/orders%252F2024%252F7/events 202" in requests


def test_errors_controls_and_skip_through_devs_api(dev: DevProcess, tmp_path: Path) -> None:
    env = {"WORKFLOWS_API_URL": dev.url}  # the environment's, with no option
    assert workflows(tmp_path, "start", "dev-long", "--id", "ana@example.com", **env).returncode == 0
    until(
        "the sleep",
        lambda: json.loads(workflows(tmp_path, "status", "ana@example.com", "--json", **env).stdout)["wait"],
    )
    paused = workflows(tmp_path, "pause", "ana@example.com", **env).stdout
    assert paused.startswith("ana@example.com: pause requested; now ")
    assert "now waiting" in workflows(tmp_path, "resume", "ana@example.com", **env).stdout
    skipped = workflows(tmp_path, "skip", "ana@example.com", **env)  # dev's own route, id encoded twice
    assert "ana@example.com: wait skipped" in skipped.stdout
    assert "POST /dev/instances/ana%2540example.com/skip 202" in dev.out.read_text()
    terminated = workflows(tmp_path, "terminate", "ana@example.com", "--json", **env).stdout
    assert json.loads(terminated)["status"] == "terminated"

    missing = workflows(tmp_path, "status", "nope", ok=False, **env)
    assert missing.stderr == "workflows: InstanceNotFoundError: no instance 'nope'\n"
    unknown = workflows(tmp_path, "start", "no-such-flow", ok=False, **env)
    assert unknown.stderr.startswith("workflows: WorkflowNotFoundError: ")
    ended = workflows(tmp_path, "event", "ana@example.com", "x", ok=False, **env)
    assert ended.stderr.startswith("workflows: InvalidStateError: ")
    both = workflows(tmp_path, "status", "x", "--api-url", dev.url, "--table", "t", ok=False)
    assert both.stderr == "workflows: --api-url goes through the HTTP API: give it without --table\n"
    gone = workflows(tmp_path, "status", "x", "--api-url", "http://127.0.0.1:9", ok=False)
    assert gone.stderr.startswith(
        "workflows: ApiUnreachableError: cannot reach the API at http://127.0.0.1:9"
    )
    assert "Traceback" not in gone.stderr + both.stderr + missing.stderr
