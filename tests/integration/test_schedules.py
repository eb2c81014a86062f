"""Schedules on moto (LocalRuntime, virtual clock): once per tick under duplicate sweeps and a crash,
catch-up after an outage, pause and resume over the HTTP API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from framework import cli, workflow
from framework.api.registry import REGISTRY
from framework.engine.schedules import fire_id
from framework.local import LocalContext, LocalRuntime
from handlers import api
from tests.integration.apigw import http_event

HOUR = 3600.0


@workflow("it-hourly", schedule="0 * * * *", catch_up="all", catch_up_window="1 day")
def it_hourly(event: Any, step: Any) -> Any:
    return step.do("report", lambda: event.payload["scheduled_time"])


REGISTRY.remove(it_hourly)  # type: ignore[arg-type]  # a schedule there would fire in other tests' runtimes


@pytest.fixture
def rt() -> Iterator[LocalRuntime]:
    with LocalRuntime(workflows=[it_hourly]) as runtime:
        yield runtime


def ids(rt: LocalRuntime) -> list[str]:
    return sorted(i.id for i in rt.client.list(limit=1000).instances)


def top(rt: LocalRuntime, hours: int) -> float:
    return (rt.clock.now() // HOUR + 1 + hours) * HOUR


def test_advance_fires_once_per_tick_and_duplicate_sweeps_start_nothing_twice(rt: LocalRuntime) -> None:
    first = top(rt, 0)
    rt.advance("3 hours")
    assert ids(rt) == [fire_id("it-hourly", first + i * HOUR) for i in range(3)]
    sends = rt.aws_calls["sqs.SendMessage"]
    rt.clock.set(first + 3 * HOUR + 1)
    rt.sweep()
    rt.sweep()  # a second run at the same time
    assert len(ids(rt)) == 4 and rt.aws_calls["sqs.SendMessage"] == sends + 1
    rt.run_until_idle()
    assert {i.status for i in rt.client.list().instances} == {"complete"}


def test_a_crash_between_the_create_and_the_mark_starts_the_fire_once(rt: LocalRuntime) -> None:
    rt.sweep()
    fire = top(rt, 0)
    rt.clock.set(fire + 1)
    rt.crash_at("schedule.after_create")
    rt._scheduled_sweep()  # the run dies after the create
    assert rt.crashes == 1 and ids(rt) == [fire_id("it-hourly", fire)]
    rt.sweep()
    assert ids(rt) == [fire_id("it-hourly", fire)]
    assert rt.env.store.schedule_state("it-hourly").mark == fire + 1


def test_catch_up_all_after_an_outage(rt: LocalRuntime) -> None:
    rt.sweep()
    base = top(rt, 0)
    rt.clock.set(base + 4 * HOUR + 30)  # no sweep for four hours
    rt.sweep()
    assert ids(rt) == [fire_id("it-hourly", base + i * HOUR) for i in range(5)]


def call(rt: LocalRuntime, method: str, path: str) -> tuple[int, Any]:
    context = LocalContext("ApiFunction", rt.clock, rt.clock.now() + 30)
    response = api.handler(http_event(method, path), context)
    return response["statusCode"], json.loads(response["body"])


def test_pause_and_resume_over_the_api(rt: LocalRuntime) -> None:
    code, body = call(rt, "GET", "/schedules")
    assert code == 200 and [s["workflow"] for s in body["schedules"]] == ["it-hourly"]
    assert body["schedules"][0]["cron"] == "0 * * * *" and body["schedules"][0]["next_fire"]
    code, body = call(rt, "POST", "/schedules/it-hourly/pause")
    assert code == 200 and body["paused"] is True and body["next_fire"] is None
    rt.advance("2 hours")
    assert ids(rt) == []
    code, body = call(rt, "POST", "/schedules/it-hourly/resume")
    assert code == 200 and body["paused"] is False
    rt.advance("1 hour")
    assert len(ids(rt)) == 1  # the missed two are dropped
    for path in ("/schedules/nope/pause", "/schedules/nope/resume"):
        code, body = call(rt, "POST", path)
        assert code == 404 and set(body) == {"error", "message"}


def test_pause_and_resume_with_the_cli(rt: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    stack = ["--table", rt.table_name, "--queue-url", rt.queue_url, "--modules", __name__]
    REGISTRY.add(it_hourly)  # type: ignore[arg-type]  # what --modules registers on a first import
    try:
        _cli_pause_and_resume(rt, capsys, stack)
    finally:
        REGISTRY.remove(it_hourly)  # type: ignore[arg-type]


def _cli_pause_and_resume(rt: LocalRuntime, capsys: pytest.CaptureFixture[str], stack: list[str]) -> None:
    assert cli.main(["schedules", "pause", "it-hourly", "--json", *stack]) == 0
    assert json.loads(capsys.readouterr().out)["paused"] is True
    assert rt.env.store.schedule_state("it-hourly").paused
    assert cli.main(["schedules", *stack]) == 0
    assert "it-hourly" in capsys.readouterr().out
    assert cli.main(["schedules", "resume", "it-hourly", *stack]) == 0
    assert "resumed" in capsys.readouterr().out
    assert not rt.env.store.schedule_state("it-hourly").paused
    assert cli.main(["schedules", "pause", "nope", *stack]) == 1
