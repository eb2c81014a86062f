"""Every ```python block of the README and of docs/ runs as written, each in a fresh interpreter: a
block with ``def test_`` functions under pytest, one that talks to a deployed stack (it reads
``API_URL`` or ``WorkflowClient.from_env()``) against ``workflows dev`` on a moto server, every other
one as a script. A comment right below a ``print()`` shows what it prints, and must be what it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework.local.devprocess import DevProcess

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^([ \t]*)```python\n(.*?)^\1```", flags=re.DOTALL | re.MULTILINE)
SHOWN = re.compile(r"^( *)print\(.*\n\1# (.*)$", flags=re.MULTILINE)
STACK = ('os.environ["API_URL"]', "WorkflowClient.from_env()")


def blocks(path: Path) -> list[str]:
    return [textwrap.dedent(body) for _, body in FENCE.findall(path.read_text())]


SNIPPETS = [(d.relative_to(ROOT).as_posix(), i, b) for d in DOCS for i, b in enumerate(blocks(d))]
LOCAL = [s for s in SNIPPETS if not any(mark in s[2] for mark in STACK)]
DEPLOYED = [s for s in SNIPPETS if any(mark in s[2] for mark in STACK)]


def ids(snippets: list[tuple[str, int, str]]) -> list[str]:
    return [f"{d}:{i}" for d, i, _ in snippets]


def test_the_readme_has_snippets() -> None:
    text = (ROOT / "README.md").read_text()
    assert blocks(ROOT / "README.md")
    assert (
        text.index("make demo") < text.index("```python") and "make test" in text[: text.index("```python")]
    )


def test_every_python_block_of_the_docs_is_collected() -> None:
    """The fence pattern misses none: as many collected as the docs open, indented ones included."""
    opened = sum(len(re.findall(r"^[ \t]*```python$", d.read_text(), flags=re.MULTILINE)) for d in DOCS)
    assert len(SNIPPETS) == opened > 20
    assert DEPLOYED and all(d == "docs/deploy.md" for d, _, _ in DEPLOYED)


def test_the_porting_guide_has_snippets_that_show_their_output() -> None:
    guide = blocks(ROOT / "docs" / "cloudflare.md")
    assert guide and all(SHOWN.search(b) for b in guide)


def run(block: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / ("test_snippet.py" if re.search(r"^def test_", block, re.MULTILINE) else "snippet.py")
    script.write_text(block)
    command = [sys.executable, str(script)]
    if script.name.startswith("test_"):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(script)]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def check(doc: str, index: int, block: str, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"{doc} snippet {index} failed:\n{block}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    printed = result.stdout.splitlines()
    for _, expected in SHOWN.findall(block):
        assert expected in printed, f"{doc} snippet {index} prints {printed}, not {expected!r}"


@pytest.mark.parametrize(("doc", "index", "block"), LOCAL, ids=ids(LOCAL))
def test_snippet_runs(doc: str, index: int, block: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "POWERTOOLS_LOG_LEVEL"}
    result = run(block, tmp_path, dict(env, PYTHONPATH=str(ROOT)))
    check(doc, index, block, result)
    # Local runs are quiet by default: no JSON log line of the framework unless something went wrong.
    assert '"level":"INFO"' not in result.stdout + result.stderr, f"{doc} snippet {index} logs at INFO"


@pytest.mark.parametrize(("doc", "index", "block"), DEPLOYED, ids=ids(DEPLOYED))
def test_a_deployed_stack_snippet_runs_against_workflows_dev(
    doc: str, index: int, block: str, moto_server: str, tmp_path: Path
) -> None:
    """The stack's outputs are dev's: its API for ``API_URL``, its resources for ``from_env()``."""
    args = ("--port", "0", "--workers", "1", "--endpoint-url", moto_server, "--prefix", f"docs{index}")
    with DevProcess(tmp_path, "dev", *args, modules="examples.approval", cwd=ROOT) as dev:
        banner = dev.out.read_text()

        def shown(label: str) -> str:
            found = re.search(rf"^\s*{label}:\s+(\S+)", banner, flags=re.MULTILINE)
            assert found, banner
            return found.group(1)

        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            API_URL=dev.url,
            AWS_ENDPOINT_URL=moto_server,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
            WORKFLOWS_TABLE=shown("table"),
            WORKFLOWS_QUEUE_URL=shown("queue"),
            WORKFLOWS_BUCKET=shown("bucket"),
            WORKFLOW_MODULES="examples.approval",
        )
        check(doc, index, block, run(block, tmp_path, env))
        dev.stop()


JSON_FENCE = re.compile(r"^([ \t]*)```json\n(.*?)^\1```", flags=re.DOTALL | re.MULTILINE)


def test_every_json_block_of_the_docs_parses() -> None:
    """A block is one JSON document, or JSON lines (the inbox's messages)."""
    found = 0
    for doc in DOCS:
        for _, body in JSON_FENCE.findall(doc.read_text()):
            found += 1
            try:
                json.loads(body)
            except json.JSONDecodeError:
                for line in body.splitlines():
                    json.loads(line)
    assert found > 10


def test_the_readmes_inbox_messages_are_applied_by_the_inbox() -> None:
    """Sent as written to the inbox queue, they create the instance and approve it."""
    from examples.approval import expense_approval
    from framework.local import LocalRuntime

    (lines,) = [b for _, b in JSON_FENCE.findall((ROOT / "README.md").read_text()) if '"action"' in b]
    messages = [json.loads(line) for line in lines.splitlines()]
    assert [m["action"] for m in messages] == ["create", "event"]
    with LocalRuntime(workflows=[expense_approval]) as rt:
        sqs = rt.boto3_client("sqs")
        for line in lines.splitlines():
            sqs.send_message(QueueUrl=rt.inbox_url, MessageBody=line)
            rt.advance("1 minute")
        status = rt.client.get(messages[0]["id"]).status()
    assert (status.status, status.output["approved"]) == ("complete", True), status
