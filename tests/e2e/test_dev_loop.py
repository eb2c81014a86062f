"""The dev loop on `workflows dev`, run as a user runs it (subprocesses): skip-wait through dev's own
route and `workflows skip`, `--fast`, reload on a change of a workflow module's file, and the
`workflows` command finding a running dev by itself. Every wait is polled with a bounded `until`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from framework.local import devfile
from framework.local.devprocess import DevProcess as Dev
from framework.local.devprocess import until

ROOT = Path(__file__).resolve().parents[2]


def clean_env(project: Path) -> dict[str, str]:
    """This environment with no AWS or workflows settings at all, as in a fresh shell: no region, no
    credentials, no table. The project folder and the repository on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKFLOWS_", "WORKFLOW_"))}
    env |= {"PYTHONPATH": f"{project}{os.pathsep}{ROOT}", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    env |= {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    return env


def workflows(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `workflows` command, run in ``cwd`` with a clean environment."""
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", *args],
        check=False,
        cwd=cwd,
        env=clean_env(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def start_dev(tmp_path: Path, project: Path) -> Iterator[Callable[..., Dev]]:
    """dev in ``project`` (its own folder: its discovery file and watched files are there)."""
    started: list[Dev] = []
    env = clean_env(project)

    def start(*args: str, modules: str = "tests.e2e.devflows") -> Dev:
        dev = Dev(tmp_path, f"dev{len(started)}", "--port", "0", *args, modules=modules, cwd=project, **env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop(signal.SIGKILL)


def history(dev: Dev, instance_id: str) -> list[tuple[str, str, str]]:
    entries = dev.call("GET", f"/instances/{instance_id}/history")[1]["entries"]
    return [(e["kind"], e["name"], e["status"]) for e in entries]


def status(dev: Dev, instance_id: str) -> Any:
    return dev.call("GET", f"/instances/{instance_id}")[1]


def waits_at(dev: Dev, instance_id: str, entry: tuple[str, str, str]) -> bool:
    return history(dev, instance_id)[-1:] == [entry] and status(dev, instance_id)["status"] == "waiting"


def test_skip_ends_each_wait_through_devs_route_and_the_command(
    start_dev: Callable[..., Dev], project: Path
) -> None:
    dev = start_dev("--workers", "1")
    assert dev.call("POST", "/workflows/dev-long/instances", {"id": "long-1"})[0] == 201
    until("the 2-hour sleep", lambda: waits_at(dev, "long-1", ("sleep", "two hours", "waiting")))

    assert dev.call("POST", "/dev/instances/long-1/skip") == (202, {"id": "long-1", "status": "waiting"})
    until("the 3-day event wait", lambda: waits_at(dev, "long-1", ("wait", "approval", "waiting")))

    done = workflows(project, "skip", "long-1")  # no flags: the command finds dev by itself
    assert (done.returncode, done.stderr) == (0, ""), done
    assert done.stdout.startswith("long-1: wait skipped; now ")
    until("the retry's 1-hour delay", lambda: waits_at(dev, "long-1", ("step", "flaky", "retrying")))

    done = workflows(project, "--json", "skip", "long-1")
    assert json.loads(done.stdout)["done"] == "wait skipped", done
    view = until("completion", lambda: (v := status(dev, "long-1"))["status"] == "complete" and v)
    assert view["output"] == {"approval": "timed out", "attempt": 2}
    assert history(dev, "long-1") == [
        ("step", "begin", "complete"),
        ("sleep", "two hours", "complete"),
        ("wait", "approval", "timed_out"),
        ("step", "flaky", "complete"),
    ]

    code, body = dev.call("POST", "/dev/instances/long-1/skip")
    assert (code, body["error"]) == (409, "InvalidStateError")
    assert dev.call("POST", "/dev/instances/nope/skip")[0] == 404
    assert dev.call("GET", "/dev/instances/long-1/skip")[0] == 405
    refused = workflows(project, "skip", "long-1")
    assert refused.returncode == 1 and refused.stderr.startswith("workflows: InvalidStateError: "), refused
    paths = dev.call("GET", "/openapi.json")[1]["paths"]
    assert not [p for p in paths if p.startswith("/dev")]  # the deployed API has no such route
    assert dev.stop(signal.SIGINT) == 0
    assert "Traceback" not in dev.err.read_text(), dev.err.read_text()


def test_fast_makes_every_wait_short(start_dev: Callable[..., Dev]) -> None:
    dev = start_dev("--fast", "--workers", "1")
    assert "waits:     1/3600 of their time (an hour: 1 s)" in dev.out.read_text()
    body = {"id": "fast-1", "params": {"timeout": "5 hours"}}
    assert dev.call("POST", "/workflows/dev-long/instances", body)[0] == 201
    # 2 hours, 5 hours and 1 hour: 2 s, 5 s and 1 s. No skip.
    view = until("completion", lambda: (v := status(dev, "fast-1"))["status"] == "complete" and v, 60)
    assert view["output"] == {"approval": "timed out", "attempt": 2}
    entries = dev.call("GET", "/instances/fast-1/history")[1]["entries"]
    sleep = next(e for e in entries if e["kind"] == "sleep")
    waited = datetime.fromisoformat(sleep["wake_at"]) - datetime.fromisoformat(sleep["started_at"])
    assert waited.total_seconds() == pytest.approx(2.0)  # recorded, not measured: 2 hours / 3600
    assert dev.stop(signal.SIGINT) == 0


FLOW = """
from framework import workflow


@workflow("reload-echo")
def echo(event, step):
    step.wait_for_event("go", "go", timeout="1 hour")
    return step.do("answer", lambda: "{version}")
"""


def _write(path: Path, text: str, bump: int) -> None:
    """Write ``text`` and move its modification time ``bump`` seconds on: a change however quick."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))


def _reloads(dev: Dev) -> list[str]:
    return [line for line in dev.out.read_text().splitlines() if line.startswith("workflows dev: reloaded")]


def test_dev_reloads_a_changed_workflow_module_and_keeps_instances_in_flight(
    start_dev: Callable[..., Dev], project: Path
) -> None:
    module = project / "reload_flows.py"
    _write(module, FLOW.format(version="v1"), 0)
    dev = start_dev("--workers", "2", modules="reload_flows")
    assert "reload:    on, 1 files watched" in dev.out.read_text()
    assert dev.call("POST", "/workflows/reload-echo/instances", {"id": "r-1"})[0] == 201
    until("r-1's wait", lambda: waits_at(dev, "r-1", ("wait", "go", "waiting")))

    _write(module, FLOW.format(version="v2"), 10)
    line = until("a reload", lambda: _reloads(dev) and _reloads(dev)[-1])
    assert "reload_flows.py changed" in line
    fresh = {int(p) for p in line.rsplit("pids ", 1)[1].rstrip(")").split(", ")}
    assert len(fresh) == 2 and not fresh & set(dev.worker_pids)
    until("the old workers to stop", lambda: all(_gone(p) for p in dev.worker_pids))

    assert dev.call("POST", "/instances/r-1/events", {"type": "go"})[0] == 202
    view = until("r-1 on the new code", lambda: (v := status(dev, "r-1"))["status"] == "complete" and v)
    assert view["output"] == "v2"  # the instance that waited across the reload, on the new code

    _write(module, "def broken(:\n", 20)  # a change that does not import: the code that runs stays
    until("the failed reload", lambda: "reload failed" in dev.err.read_text())
    assert len(_reloads(dev)) == 1
    assert dev.call("POST", "/workflows/reload-echo/instances", {"id": "r-2"})[0] == 201
    until("r-2's wait", lambda: waits_at(dev, "r-2", ("wait", "go", "waiting")))
    assert dev.call("POST", "/instances/r-2/events", {"type": "go"})[0] == 202
    view = until("r-2 on the last good code", lambda: (v := status(dev, "r-2"))["status"] == "complete" and v)
    assert view["output"] == "v2"

    _write(module, FLOW.format(version="v3"), 30)
    until("the second reload", lambda: len(_reloads(dev)) == 2)
    assert dev.call("POST", "/workflows/reload-echo/instances", {"id": "r-3"})[0] == 201
    until("r-3's wait", lambda: waits_at(dev, "r-3", ("wait", "go", "waiting")))
    assert dev.call("POST", "/instances/r-3/events", {"type": "go"})[0] == 202
    view = until("r-3 on the fixed code", lambda: (v := status(dev, "r-3"))["status"] == "complete" and v)
    assert view["output"] == "v3"
    assert dev.stop(signal.SIGINT) == 0
    assert "Traceback" not in dev.err.read_text(), dev.err.read_text()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_the_command_finds_a_running_dev_by_itself(
    start_dev: Callable[..., Dev], project: Path, tmp_path: Path
) -> None:
    below = project / "sub" / "folder"
    below.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # No dev yet: the command says what to do, in one line.
    missing = workflows(project, "status", "x")
    assert missing.returncode == 1 and "workflows dev" in missing.stderr and missing.stderr.count("\n") == 1

    dev = start_dev("--workers", "1")
    found = devfile.find(project)
    assert found is not None and found.api_url == dev.url and found.pid == dev.proc.pid
    banner = dev.out.read_text()
    for name, value in found.environment().items():  # what a shell, boto3 or the AWS CLI needs
        assert f"  export {name}={value}\n" in banner
    assert (
        dev.call("POST", "/workflows/dev-order/instances", {"id": "f-1", "params": {"item": "pen"}})[0] == 201
    )
    until("the wait", lambda: waits_at(dev, "f-1", ("wait", "confirm", "waiting")))

    for cwd, args in [
        (project, ["--json", "status", "f-1"]),  # global options before the command
        (below, ["status", "f-1", "--json"]),  # or after it; from a folder below
        (elsewhere, ["--endpoint-url", found.endpoint_url, "status", "f-1", "--json"]),  # the endpoint alone
        (elsewhere, ["status", "f-1", "--json", "--endpoint-url", dev.url]),  # or dev's API URL
    ]:
        done = workflows(cwd, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout)["status"] == "waiting"
    sent = workflows(project, "event", "f-1", "confirm", "--payload", '{"to": "ana"}')
    assert sent.returncode == 0, sent.stderr
    until("completion", lambda: status(dev, "f-1")["status"] == "complete")
    text = workflows(project, "status", "f-1")
    assert text.stdout.splitlines()[0] == "f-1  dev-order  complete"
    # Elsewhere with no endpoint: not this dev.
    assert workflows(elsewhere, "status", "f-1").returncode == 1

    assert dev.stop(signal.SIGINT) == 0
    assert not devfile.path_in(project).exists()  # removed on exit
    after = workflows(project, "status", "f-1")
    assert after.returncode == 1 and "workflows dev" in after.stderr


def test_a_killed_devs_discovery_file_is_stale(start_dev: Callable[..., Dev], project: Path) -> None:
    dev = start_dev("--workers", "1")
    os.kill(dev.proc.pid, signal.SIGKILL)
    dev.proc.wait()
    assert devfile.path_in(project).exists()  # left behind
    assert devfile.find(project) is None
    stale = workflows(project, "status", "x")
    assert stale.returncode == 1 and "give --table and --queue-url" in stale.stderr
    dev.kill()  # as a test's clean-up: the files of the killed dev go
    assert not any(p.exists() for p in devfile.paths(project, dev.proc.pid))
