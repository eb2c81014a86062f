"""`workflows replay-check` run as a user's CI would: a fresh interpreter, an export file, the new code's
module; its --json output is one document even where histories fail (no worker log line in it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODULE = textwrap.dedent(
    """
    import os

    from framework import workflow


    @workflow("gate-e2e")
    def order(event, step):
        step.do("reserve", lambda: "reserved")
        if os.environ.get("GATE_CODE") == "inserted":
            step.do("fraud check", lambda: "clean")
        step.do("charge", lambda: "charged")
        step.sleep("settle", "1 hour")
        return "done"
    """
)

EXPORT = textwrap.dedent(
    """
    import json, sys

    import gatemod
    from framework.local import LocalRuntime

    with LocalRuntime(workflows=[gatemod.order], log_level="INFO") as rt:
        inst = rt.client.create("gate-e2e", id="order:1")
        rt.advance("1 minute")
        open(sys.argv[1], "w").write(json.dumps(inst.export()))
    """
)


def python(tmp_path: Path, *args: str, code: str = "v1") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WORKFLOW"))}
    env |= {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "GATE_CODE": code, "POWERTOOLS_LOG_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_replay_check_of_a_file_in_a_fresh_interpreter(tmp_path: Path) -> None:
    (tmp_path / "gatemod.py").write_text(MODULE)
    (tmp_path / "export.py").write_text(EXPORT)
    exported = python(tmp_path, "export.py", "order-1.json")
    assert exported.returncode == 0, exported.stderr[-2000:]
    check = [*("-m", "framework.cli", "replay-check", "order-1.json"), *("--modules", "gatemod", "--json")]
    same = python(tmp_path, *check)
    assert same.returncode == 0, same.stdout + same.stderr[-2000:]
    assert json.loads(same.stdout) == {
        "checked": 1,
        "failed": 0,
        "results": [
            {"id": "order:1", "workflow": "gate-e2e", "ok": True, "message": "replayed 3 recorded calls"}
        ],
    }
    changed = python(tmp_path, *check, code="inserted")
    assert changed.returncode == 1, changed.stderr[-2000:]
    report = json.loads(changed.stdout)  # the whole of stdout, with logs at INFO: one document
    assert report["failed"] == 1 and "'fraud check'" in report["results"][0]["message"]
