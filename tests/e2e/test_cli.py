"""The console script, run as a user would: `workflows demo` in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_runs_the_seed_story_and_resumes_after_the_crash() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "crashed invocations: 1" in out
    assert "instance report-1 (file-processing): complete" in out
    assert "attempt 1" in out and "ConnectionError: verifier unavailable (call 1)" in out
    assert "sleep 'cool down': complete" in out
    assert "verifier calls: 3" in out  # not re-run after the crash
    assert "Traceback" not in result.stderr


def test_demo_with_a_missing_script_fails_with_one_line() -> None:
    result = run("demo", "no/such/demo.py")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no demo script" in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2


def test_global_options_go_before_or_after_the_command() -> None:
    from framework import cli

    for args in (
        ["--json", "--table", "t", "status", "x"],
        ["status", "x", "--json", "--table", "t"],
        ["--json", "status", "x", "--table", "t"],
    ):
        parsed = cli.parser().parse_args(args)
        assert (parsed.json, parsed.table, parsed.id, parsed.queue_url) == (True, "t", "x", None), args
    plain = cli.parser().parse_args(["status", "x"])
    assert (plain.json, plain.table, plain.endpoint_url) == (False, None, None)
    # dev's own --endpoint-url and --modules, given either side of `dev`
    before = cli.parser().parse_args(["--endpoint-url", "http://127.0.0.1:5000", "dev", "--fast"])
    after = cli.parser().parse_args(["dev", "--endpoint-url", "http://127.0.0.1:5000", "--no-reload"])
    assert before.endpoint_url == after.dev_endpoint_url == "http://127.0.0.1:5000"
    assert (before.fast, before.reload, after.fast, after.reload) == (True, True, False, False)
    assert run("status", "x", "--bogus").returncode == 2
