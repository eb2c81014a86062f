"""The replay gate on moto: `workflows export` and `workflows replay-check`, from files and from the
table, before and after a change of the workflow's code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from framework import workflow
from framework.cli import main
from framework.local import LocalRuntime

CODE = {"version": "v1"}
RAN: list[str] = []


def run(name: str) -> Any:
    def body() -> str:
        RAN.append(name)
        return name

    return body


@workflow("gate-order")
def order(event: Any, step: Any) -> str:
    step.do("reserve", run("reserve"))
    if CODE["version"] == "inserted":
        step.do("fraud check", run("fraud"))
    if CODE["version"] == "patched" and step.patched("fraud-check"):
        step.do("fraud check", run("fraud"))
    step.do("charge", run("charge"))
    step.sleep("settle", "1 hour")
    step.do("ship", run("ship"))
    return "shipped"


@pytest.fixture
def rt(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRuntime]:
    CODE["version"] = "v1"
    with LocalRuntime(workflows=[order]) as runtime:
        monkeypatch.setattr("framework.cli._client", lambda args: runtime.client)
        done = runtime.client.create("gate-order", {"n": 9}, id="order:done")
        runtime.advance("2 hours")
        assert done.status().status == "complete"
        for i in range(3):
            runtime.client.create("gate-order", {"n": i}, id=f"order:{i}")
        runtime.advance("1 minute")  # all three asleep in 'settle'
        yield runtime


def test_export_then_replay_check_a_file_before_and_after_a_change(
    rt: LocalRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = tmp_path / "order-done.json"
    assert main(["export", "order:done", "--output", str(exported)]) == 0
    assert json.loads(exported.read_text())["instance"]["pk"] == "order:done"
    capsys.readouterr()
    RAN.clear()
    assert main(["replay-check", str(exported)]) == 0
    assert "1 histories replayed, 0 failed" in capsys.readouterr().out
    CODE["version"] = "inserted"
    assert main(["replay-check", str(exported)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL order:done (gate-order): NonDeterminismError: ") and "'fraud check'" in out
    CODE["version"] = "patched"
    assert main(["replay-check", str(exported), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed"] == 0
    assert RAN == []  # no step body ran in any check


def test_replay_check_reads_the_table_unfinished_by_default(
    rt: LocalRuntime, capfd: pytest.CaptureFixture[str]
) -> None:
    CODE["version"] = "inserted"
    assert main(["replay-check", "--workflow", "gate-order", "--json"]) == 1
    report = json.loads(capfd.readouterr().out)  # one document: no worker log line beside it
    assert report["checked"] == 3 and report["failed"] == 3  # the three asleep; not the complete one
    assert main(["replay-check", "--all", "--limit", "2", "--json"]) == 1
    assert json.loads(capfd.readouterr().out)["checked"] == 2
    CODE["version"] = "patched"
    assert main(["replay-check", "--all"]) == 0
    assert "4 histories replayed, 0 failed" in capfd.readouterr().out
    rt.run_until_idle()  # and the patched code does run them: the old path kept
    for i in range(3):
        assert rt.client.get(f"order:{i}").status().output == "shipped"


def test_bad_files_are_one_line_errors(
    rt: LocalRuntime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    for path, expected in (
        (tmp_path / "missing.json", "cannot read"),
        (tmp_path / "bad.json", "is not JSON"),
        (tmp_path / "other.json", "not a history export"),
    ):
        assert main(["replay-check", str(path)]) == 1
        err = capsys.readouterr().err
        assert (
            err.startswith("workflows: InvalidConfigError: ") and expected in err and "Traceback" not in err
        )
    assert main(["export", "order:none"]) == 1
    assert "InstanceNotFoundError" in capsys.readouterr().err


def test_export_and_the_table_check_need_the_table_not_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["export", "order:1"], ["replay-check", "--workflow", "gate-order"]):
        assert main([*argv, "--api-url", "http://127.0.0.1:9"]) == 1
        assert "reads the table itself" in capsys.readouterr().err
