"""Every ```python block of the README and of docs/cloudflare.md runs as written, each in a fresh
interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
GUIDE = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "cloudflare.md").read_text(), flags=re.DOTALL)
SNIPPETS = [("README.md", i, b) for i, b in enumerate(BLOCKS)] + [
    ("docs/cloudflare.md", i, b) for i, b in enumerate(GUIDE)
]


def test_the_readme_has_snippets() -> None:
    assert BLOCKS
    text = (ROOT / "README.md").read_text()
    assert (
        text.index("make demo") < text.index("```python") and "make test" in text[: text.index("```python")]
    )


def test_the_porting_guide_has_snippets_that_show_their_output() -> None:
    assert GUIDE and all(re.search(r"^( *)print\(.*\n\1# ", b, flags=re.MULTILINE) for b in GUIDE)


@pytest.mark.parametrize(("doc", "index", "block"), SNIPPETS, ids=[f"{d}:{i}" for d, i, _ in SNIPPETS])
def test_snippet_runs(doc: str, index: int, block: str, tmp_path: Path) -> None:
    script = tmp_path / f"snippet{index}.py"
    script.write_text(block)
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
    assert result.returncode == 0, f"{doc} snippet {index} failed:\n{block}\n{result.stderr[-3000:]}"
    # A comment right below a print() shows what it prints: it must be what it prints.
    shown = re.findall(r"^( *)print\(.*\n\1# (.*)$", block, flags=re.MULTILINE)
    printed = result.stdout.splitlines()
    for _, expected in shown:
        assert expected in printed, f"{doc} snippet {index} prints {printed}, not {expected!r}"
