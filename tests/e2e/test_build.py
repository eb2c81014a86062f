"""`sam build` packaging: each function's artifact, as `make build-<Function>` makes it for SAM's
makefile builder, holds our code, the workflow packages and dependencies built for Lambda's arm64 Python."""

from __future__ import annotations

import subprocess
from pathlib import Path

from infra.lint_template import ROOT

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def test_the_worker_artifact_is_complete_and_built_for_arm64(tmp_path: Path) -> None:
    out = tmp_path / "WorkerFunction"
    run = subprocess.run(
        ["make", "-s", "build-WorkerFunction", f"ARTIFACTS_DIR={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for path in (
        "handlers/worker.py",
        "framework/engine/step.py",
        "framework/_data/template.yaml",
        "framework/dashboard/index.html",  # the page GET /ui serves (handlers/ui.py)
        "examples",
    ):
        assert (out / path).exists(), path
    assert not (out / "tests").exists() and not (out / ".venv").exists()
    (native,) = (out / "pydantic_core").glob("_pydantic_core.*.so")
    assert "cpython-312-aarch64-linux-gnu" in native.name
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < LAMBDA_UNZIPPED_LIMIT
    for package in ("boto3", "aws_lambda_powertools", "pydantic"):
        assert (out / package).is_dir(), package
