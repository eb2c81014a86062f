"""Every ```python block of docs/cloudflare.md runs as written, each in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cloudflare.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_guide_has_snippets() -> None:
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_snippet_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / f"snippet{index}.py"
    script.write_text(BLOCKS[index])
    env = dict(os.environ, PYTHONPATH=str(ROOT), POWERTOOLS_LOG_LEVEL="ERROR")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"snippet {index} failed:\n{BLOCKS[index]}\n{result.stderr[-3000:]}"
    # A comment right below a print() shows what it prints: it must be what it prints.
    shown = re.findall(r"^( *)print\(.*\n\1# (.*)$", BLOCKS[index], flags=re.MULTILINE)
    printed = result.stdout.splitlines()
    assert shown
    for _, expected in shown:
        assert expected in printed, f"snippet {index} prints {printed}, not {expected!r}"
