"""A new user's path, as the README tells it: a fresh clone, `make dev`, the README's curl flow against
it, the `workflows` command with no flags beyond the command, and the dashboard. The environment holds
nothing the README does not show: no AWS variable, no WORKFLOWS_* variable."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework.local.devprocess import until

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PORT = 8787  # the README's
SETUP_SECONDS = 600  # a fresh .venv: pip, uv and the project's install (from the machine's caches)


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    return README[start : README.index("\n## ", start + 1)]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.join(shlex.split(line, comments=True)) for line in joined.splitlines() if line.strip()]


def clean_env() -> dict[str, str]:
    """A new user's shell: the machine's own settings (its package index, certificates, proxy) kept,
    and nothing the README does not show: no AWS_*, WORKFLOWS_*, WORKFLOW_*, POWERTOOLS_*, PYTHONPATH
    or virtualenv of ours."""
    dropped = ("AWS_", "WORKFLOWS_", "WORKFLOW_", "POWERTOOLS_", "PYTHONPATH", "VIRTUAL_ENV", "MOTO_")
    return {k: v for k, v in os.environ.items() if not k.startswith(dropped)}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    return target


@pytest.fixture
def make_dev(clone: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", PORT)) != 0, f"port {PORT}, the README's, is in use"
    out = tmp_path / "make-dev.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["make", "dev"],
            cwd=clone,
            env=clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, shell=True, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=60, check=False
    )


def test_a_new_user_follows_the_readme(clone: Path, make_dev: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, out = make_dev

    def serving() -> bool:
        assert proc.poll() is None, out.read_text()[-3000:]
        return "Ctrl-C stops it." in out.read_text()

    until("make dev to serve", serving, timeout=SETUP_SECONDS, every=1)
    assert (shell_blocks(section("Run the stack locally"))[0].split()[0]) == ".venv/bin/workflows"

    # The README's curl flow, each command as written.
    flow = commands(shell_blocks(section("Run the stack locally"))[1])
    assert [c.split()[0] for c in flow] == ["curl"] * 5
    create, look, send, look_again, history = flow
    assert json.loads(run(create, clone).stdout) == {"id": "exp-1", "status": "queued"}

    def status() -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(run(look, clone).stdout)
        assert shown["status"] in ("queued", "running", "waiting", "complete"), shown
        return shown

    waiting = until("exp-1 to wait for its approval", lambda: status()["status"] == "waiting" and status())
    assert waiting["wait"]["kind"] == "event" and waiting["wait"]["event_type"] == "approval", waiting
    assert json.loads(run(send, clone).stdout)["id"] == "exp-1"
    done = until(
        "exp-1 to complete",
        lambda: (s := json.loads(run(look_again, clone).stdout))["status"] == "complete" and s,
    )
    assert done["output"]["approved"] is True
    entries = json.loads(run(history, clone).stdout)["entries"]
    assert {"step", "wait", "event"} <= {e["kind"] for e in entries}, entries

    # The CLI with no flags finds the dev stack that `make dev` started in the clone.
    cli = commands(shell_blocks(section("Run the stack locally"))[2])
    shown = run(cli[0], clone)
    assert shown.returncode == 0 and "complete" in shown.stdout, shown.stderr
    timeline = run(cli[1], clone)
    assert timeline.returncode == 0 and "approval" in timeline.stdout, timeline.stderr

    # The dashboard the README points at.
    page = run(f"curl -s -i http://127.0.0.1:{PORT}/ui", clone).stdout
    assert page.startswith("HTTP/1.") and " 200 " in page.splitlines()[0] and "text/html" in page, page[:500]

    os.killpg(proc.pid, signal.SIGINT)
    # make dies of the Ctrl-C itself (-SIGINT) or reports its child's (2); dev stops cleanly either way
    assert proc.wait(30) in (0, 2, -signal.SIGINT), out.read_text()[-3000:]
    assert "workflows dev: stopped" in out.read_text()
    assert "Traceback" not in out.read_text(), out.read_text()[-3000:]
    assert not (clone / ".workflows" / "dev.json").exists()  # dev removed its discovery file
