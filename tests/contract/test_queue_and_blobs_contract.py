"""One contract for the queue (SQS on moto, and the fake) and one for the blob store (S3, and the fake)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from framework.backends.blobs import MemoryBlobs
from framework.backends.queue import MemoryQueue
from framework.core.clock import VirtualClock
from framework.local import LocalRuntime


@pytest.fixture(params=["memory", "aws"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "memory":
        clock = VirtualClock()
        queue = MemoryQueue(clock)
        yield {"queue": queue, "blobs": MemoryBlobs(), "clock": clock, "due": queue.due}
        return
    with LocalRuntime(workflows=[]) as rt:
        sqs = rt.boto3_client("sqs")

        def due() -> list[str]:
            messages = sqs.receive_message(QueueUrl=rt.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            for m in messages:
                sqs.delete_message(QueueUrl=rt.queue_url, ReceiptHandle=m["ReceiptHandle"])
            return [m["Body"] for m in messages]

        yield {"queue": rt.env.queue, "blobs": rt.env.blobs, "clock": rt.clock, "due": due}


def test_delayed_messages_arrive_after_their_delay(backend: dict[str, Any]) -> None:
    queue, clock, due = backend["queue"], backend["clock"], backend["due"]
    queue.send("now", 0)
    queue.send("later", 900)
    assert due() == ["now"]
    clock.advance(899)
    assert due() == []
    clock.advance(1.5)
    assert due() == ["later"]


def test_a_batch_sends_each_message_with_its_own_delay_and_reports_the_refused(
    backend: dict[str, Any],
) -> None:
    queue, clock, due = backend["queue"], backend["clock"], backend["due"]
    messages = [(f"m{i}", 0 if i % 2 else 600) for i in range(12)] + [("too late", 901)]
    assert queue.send_batch(messages) == [12]  # past ten to a request; only the bad one refused
    got = []
    while batch := due():
        got += batch
    assert sorted(got) == sorted(f"m{i}" for i in range(1, 12, 2))
    clock.advance(600.5)
    later = []
    while batch := due():
        later += batch
    assert sorted(later) == sorted(f"m{i}" for i in range(0, 12, 2))


@pytest.mark.parametrize("delay", [-1, 901])
def test_delays_outside_sqs_limits_are_refused(backend: dict[str, Any], delay: int) -> None:
    if delay == -1 and not isinstance(backend["queue"], MemoryQueue):
        pytest.skip("moto wrongly accepts -1 (shared/reference/toolbox.md); the engine never sends it")
    with pytest.raises(Exception, match=r"900|DelaySeconds|delay"):
        backend["queue"].send("x", delay)


def test_blobs_roundtrip(backend: dict[str, Any]) -> None:
    blobs = backend["blobs"]
    data = b"x" * 2_000_000
    blobs.put("results/i/1/0", data)
    assert blobs.get("results/i/1/0") == data
    assert blobs.size("results/i/1/0") == 2_000_000  # without reading it
    with pytest.raises(Exception):
        blobs.get("missing")


def test_blobs_listed_by_prefix_and_deleted(backend: dict[str, Any]) -> None:
    blobs = backend["blobs"]
    for key in ("results/a/1/0/1", "results/a/2/3/1", "results/ab/1/0/1", "outputs/a/1"):
        blobs.put(key, b"x")
    assert sorted(blobs.keys("results/a/")) == ["results/a/1/0/1", "results/a/2/3/1"]
    assert blobs.delete([*blobs.keys("results/a/"), "results/a/gone"]) == 3  # a missing one is no error
    assert blobs.keys("results/a/") == []
    assert blobs.get("results/ab/1/0/1") == b"x" and blobs.get("outputs/a/1") == b"x"
    assert blobs.delete([]) == 0
