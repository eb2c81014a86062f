"""When TTL removes a finished instance, the stream-driven cleanup removes what it left behind."""

from __future__ import annotations

from typing import Any

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
            stream_record("kept", "j#0001#000000"),
            stream_record("kept", "instance", event="MODIFY"),
        ]
        assert cleanup.handler({"Records": ignored}, context) == {"batchItemFailures": []}
        assert len(rt.env.store.load_journal("kept", 1)) == 2  # nothing purged for those
        key = {"pk": {"S": "big"}, "sk": {"S": "instance"}}
        rt.boto3_client("dynamodb").delete_item(TableName=rt.table_name, Key=key)  # what TTL does
        removal = {"Records": [stream_record("big", "instance")]}
        assert cleanup.handler(removal, context) == {"batchItemFailures": []}
        assert rt.env.store.load_journal("big", 1) == []
        assert s3.list_objects_v2(Bucket=rt.bucket_name, Prefix="results/big/")["KeyCount"] == 0


def test_an_id_used_again_keeps_its_new_items() -> None:
    from framework.dynamodb_items import to_av
    from framework.records import EntryKind, EntryStatus, JournalEntry
    from framework.store import full_journal

    with LocalRuntime(workflows=[w.chain]) as rt:
        rt.advance("1 hour")
        inst = rt.client.create("it-chain", {"steps": 2}, id="again")
        rt.run_until_idle()
        store = rt.env.store
        created = store.get_instance("again").created_at  # type: ignore[union-attr]
        # Left over from an older instance with this id, whose item TTL removed:
        store.write_entry(
            "again", 1, JournalEntry(7, EntryKind.STEP, "old", EntryStatus.COMPLETE, created - 3000)
        )
        store.write_entry(
            "again", 2, JournalEntry(0, EntryKind.STEP, "old", EntryStatus.COMPLETE, created - 3000)
        )
        old_event = {
            "pk": "again",
            "sk": "e#go#old#1",
            "type": "go",
            "payload": "null",
            "sent_at": created - 3000,
        }
        rt.boto3_client("dynamodb").put_item(TableName=rt.table_name, Item=to_av(old_event))
        context = LocalContext("CleanupFunction", rt.clock, rt.clock.now() + 60)
        removal = {"Records": [stream_record("again", "instance")]}
        assert cleanup.handler(removal, context) == {"batchItemFailures": []}
        assert [e.seq for e in full_journal(store, inst.id, 1)] == [0, 1]
        assert store.load_journal(inst.id, 2) == [] and store.load_events(inst.id) == []
