"""When TTL removes a finished instance, the stream-driven cleanup removes what it left behind."""

from __future__ import annotations

from typing import Any

from framework.backends.store import full_journal
from framework.local import LocalContext, LocalRuntime
from handlers import cleanup
from tests.integration import workflows as w


def stream_record(instance_id: str, sk: str, *, by_ttl: bool = True, event: str = "REMOVE") -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventID": f"{instance_id}-{sk}",
        "eventName": event,
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"pk": {"S": instance_id}, "sk": {"S": sk}},
            "SequenceNumber": "1",
            "SizeBytes": 10,
            "StreamViewType": "KEYS_ONLY",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026",
    }
    if by_ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def test_ttl_removal_purges_journal_events_and_blobs() -> None:
    with LocalRuntime(workflows=[w.big, w.approval]) as rt:
        big = rt.client.create("it-big", id="big")
        kept = rt.client.create("it-approval", id="kept")
        rt.advance(0)
        kept.send_event("approved", {"by": "x"})
        rt.run_until_idle()
        assert big.status().status == "complete"
        s3 = rt.boto3_client("s3")
        assert s3.list_objects_v2(Bucket=rt.bucket_name, Prefix="results/big/")["KeyCount"] == 2
        context = LocalContext("CleanupFunction", rt.clock, rt.clock.now() + 60)
        ignored = [
            stream_record("kept", "instance", by_ttl=False),
            stream_record("kept", "j#x#0001#000000"),
            stream_record("kept", "instance", event="MODIFY"),
        ]
        assert cleanup.handler({"Records": ignored}, context) == {"batchItemFailures": []}
        assert len(full_journal(rt.env.store, "kept", 1)) == 2  # nothing purged for those
        ttl_remove(rt, "big")
        removal = {"Records": [stream_record("big", "instance")]}
        assert cleanup.handler(removal, context) == {"batchItemFailures": []}
        assert _partition(rt, "big") == []
        assert s3.list_objects_v2(Bucket=rt.bucket_name, Prefix="results/big/")["KeyCount"] == 0


def test_an_id_used_again_is_a_new_instance_at_once_and_its_cleanup_keeps_it() -> None:
    """TTL removed order-7's instance item; its journal, events and S3 results are still there (the
    cleanup has not run, or keeps failing). A new order-7 runs as its own instance at once: none of the
    old results, events or blobs reach it, and its first journal writes do not conflict."""
    with LocalRuntime(workflows=[w.charge]) as rt:
        old = rt.client.create("it-charge", {"amount": 100, "big": True}, id="order-7")
        rt.advance(0)
        old.send_event("approved", {"by": "old"})
        old.send_event("approved", {"by": "left over"})  # never taken: still buffered
        rt.run_until_idle()
        assert old.status().output == {"charged": 100, "by": "old"}
        ttl_remove(rt, "order-7")

        new = rt.client.create("it-charge", {"amount": 5, "big": True}, id="order-7")
        rt.advance("1 minute")
        assert new.status().status == "waiting"  # the left-over event is not this instance's
        assert [e.name for e in new.history()] == ["charge", "approval"]
        new.send_event("approved", {"by": "new"})
        rt.run_until_idle()
        assert new.status().output == {"charged": 5, "by": "new"}
        assert new.history()[0].result["charged"] == 5

        before = _blobs(rt)
        assert len(before) == 2  # one large result each
        context = LocalContext("CleanupFunction", rt.clock, rt.clock.now() + 60)
        assert cleanup.handler({"Records": [stream_record("order-7", "instance")]}, context) == {
            "batchItemFailures": []
        }
        after = _blobs(rt)
        mine = rt.env.store.get_instance("order-7").incarnation  # type: ignore[union-attr]
        assert len(after) == 1 and f"/{mine}/" in after[0]  # the old blob went, the new one stayed
        assert new.status().output == {"charged": 5, "by": "new"}
        assert new.history()[0].result["charged"] == 5
        left = {item["sk"]["S"].split("#")[1] for item in _partition(rt, "order-7")}
        assert left == {mine}  # only the new instance's journal and events (and its item) remain


def test_an_instance_created_while_the_cleanup_runs_keeps_what_it_wrote() -> None:
    """The cleanup of a removed order-8 reads whether the id is taken; a new order-8 is created and
    records its first (large) step right then. None of what the new instance wrote is deleted."""
    with LocalRuntime(workflows=[w.charge]) as rt:
        old = rt.client.create("it-charge", {"amount": 100, "big": True}, id="order-8")
        rt.advance(1)
        old.send_event("approved", {"by": "old"})
        rt.advance(1)
        assert old.status().status == "complete"
        ttl_remove(rt, "order-8")
        store = rt.env.store
        real, new = store.get_instance, []

        def racing(instance_id: str) -> Any:
            found = real(instance_id)
            if not new:
                new.append(rt.client.create("it-charge", {"amount": 5, "big": True}, id="order-8"))
                rt.advance(1)  # it records its charge (in S3) and waits
            return found

        store.get_instance = racing  # type: ignore[method-assign]
        context = LocalContext("CleanupFunction", rt.clock, rt.clock.now() + 60)
        assert cleanup.handler({"Records": [stream_record("order-8", "instance")]}, context) == {
            "batchItemFailures": []
        }
        del store.get_instance
        new[0].send_event("approved", {"by": "new"})
        rt.advance(1)
        assert new[0].status().output == {"charged": 5, "by": "new"}
        assert new[0].history()[0].result["charged"] == 5


def _blobs(rt: LocalRuntime) -> list[str]:
    listed = rt.boto3_client("s3").list_objects_v2(Bucket=rt.bucket_name)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def ttl_remove(rt: LocalRuntime, instance_id: str) -> None:
    """What TTL (or a DeleteItem) does: the instance item goes, and nothing else."""
    key = {"pk": {"S": instance_id}, "sk": {"S": "instance"}}
    rt.boto3_client("dynamodb").delete_item(TableName=rt.table_name, Key=key)


def _partition(rt: LocalRuntime, instance_id: str) -> list[dict[str, Any]]:
    """Every item of the instance's partition but the instance item."""
    page = rt.boto3_client("dynamodb").query(
        TableName=rt.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": instance_id}},
    )
    return [item for item in page["Items"] if item["sk"]["S"] != "instance"]


def test_the_cleanup_of_an_id_leaves_the_blobs_of_ids_that_begin_with_it() -> None:
    """Ids "a" and "a/b": blob keys escape the id ("results/a/..." and "results/a%2Fb/..."), so the
    purge of "a", which lists "results/a/", finds none of the blobs of "a/b"."""
    with LocalRuntime(workflows=[w.big]) as rt:
        for instance_id in ("a", "a/b", "a/b/c"):
            rt.client.create("it-big", id=instance_id)
        rt.run_until_idle()
        assert len(_blobs(rt)) == 6  # two large results each
        ttl_remove(rt, "a")
        context = LocalContext("CleanupFunction", rt.clock, rt.clock.now() + 60)
        assert cleanup.handler({"Records": [stream_record("a", "instance")]}, context) == {
            "batchItemFailures": []
        }
        left = _blobs(rt)
        assert len(left) == 4 and all(k.split("/")[1] in ("a%2Fb", "a%2Fb%2Fc") for k in left)
        for instance_id in ("a/b", "a/b/c"):
            assert rt.client.get(instance_id).history()[0].result == "z" * 500_000
