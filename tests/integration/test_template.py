"""template.yaml: it translates offline, and linting the translation catches what raw SAM linting misses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from framework.local.template import load_stack
from infra.lint_template import ROOT, translated

CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def test_translation_keeps_partial_batch_responses() -> None:
    resources = translated(ROOT / "template.yaml")["Resources"]
    assert isinstance(resources, dict)
    mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 3  # work queue, inbox, table stream
    assert all(m["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)


def test_translated_lint_catches_a_typo_that_raw_lint_misses(tmp_path: Path) -> None:
    bad = (
        (ROOT / "template.yaml").read_text().replace("[ReportBatchItemFailures]", "[ReportBatchItemFailure]")
    )
    raw = tmp_path / "bad.yaml"
    raw.write_text(bad)
    out = tmp_path / "bad.json"
    out.write_text(json.dumps(translated(raw)))
    assert subprocess.run([CFN_LINT, str(raw)], capture_output=True, check=False).returncode == 0
    assert subprocess.run([CFN_LINT, str(out)], capture_output=True, check=False).returncode != 0


def test_work_queue_visibility_is_six_times_the_worker_timeout() -> None:
    stack = load_stack(ROOT / "template.yaml")
    queue = stack.of_type("AWS::SQS::Queue")["WorkQueue"]
    worker = stack.of_type("AWS::Serverless::Function")["WorkerFunction"]
    assert int(queue["VisibilityTimeout"]) >= 6 * int(stack.resolve(worker["Timeout"]))
