"""The `workflows` command against a running stack (a moto server on 127.0.0.1), as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from examples.approval import expense_approval
from framework.local import LocalRuntime

ROOT = Path(__file__).resolve().parents[2]


def test_cli_drives_an_instance_end_to_end(moto_server: str, tmp_path: Path) -> None:
    with LocalRuntime(workflows=[expense_approval], endpoint_url=moto_server, prefix="cli") as rt:
        env = dict(
            os.environ,
            WORKFLOWS_TABLE=rt.table_name,
            WORKFLOWS_QUEUE_URL=rt.queue_url,
            WORKFLOW_MODULES="examples.approval",
            PYTHONPATH=str(ROOT),
        )

        def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
            result = subprocess.run(
                [sys.executable, "-m", "framework.cli", *args, "--endpoint-url", moto_server],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert (result.returncode == 0) == ok, result.stderr
            return result

        def js(*args: str) -> Any:
            return json.loads(cli(*args, "--json").stdout)

        params = tmp_path / "params.json"
        params.write_text(json.dumps({"employee": "ana", "amount": 5}))
        assert cli("start", "expense-approval", "--id", "e1", "--params", f"@{params}").stdout.strip() == "e1"
        rt.advance(0.5)
        assert js("status", "e1")["status"] == "waiting"
        assert js("pause", "e1")["status"] == "paused"
        assert js("resume", "e1")["status"] == "waiting"
        assert "e1" in cli("list", "--workflow", "expense-approval").stdout
        assert js("list", "--status", "waiting")["instances"][0]["id"] == "e1"
        cli("event", "e1", "approval", "--payload", '{"approved": true, "by": "cli"}')
        rt.advance(0.5)
        status = js("status", "e1")
        assert status["status"] == "complete" and status["output"]["by"] == "cli"
        timeline = cli("history", "e1").stdout
        assert "wait  'approval': complete" in timeline and "attempt 1" in timeline
        assert [e["kind"] for e in js("history", "e1")["entries"]] == ["step", "wait", "event"]
        errors = [
            cli("event", "e1", "approval", ok=False),  # finished: 409 over HTTP
            cli("status", "missing", ok=False),
            cli("start", "expense-approval", "--params", "{oops", ok=False),
            cli("start", "expense-approval", "--params", '{"employee": "x", "amount": -1}', ok=False),
            cli("resume", "e1", ok=False),
        ]
        for result in errors:
            assert result.stderr.count("\n") == 1 and result.stderr.startswith("workflows: "), result.stderr
        assert "InvalidStateError" in errors[0].stderr and "InstanceNotFoundError" in errors[1].stderr
        assert "not JSON" in errors[2].stderr and "InvalidParamsError" in errors[3].stderr
        cli("start", "expense-approval", "--id", "e2", "--params", '{"employee": "b", "amount": 1}')
        assert js("terminate", "e2")["status"] == "terminated"
        assert js("restart", "e2")["status"] == "queued"
