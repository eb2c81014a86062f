"""Long histories: the warm-container journal cache, and the cap on durable calls per run."""

from __future__ import annotations

from typing import Any

import pytest

from framework import Workflow
from framework.backends.environment import Environment, Settings
from framework.backends.store import full_journal
from framework.core.records import JournalEntry
from framework.engine.invocation import Outcome, process_message
from tests.unit.harness import FakeContext, Harness


class ReadCounter:
    """Wraps a store: counts the journal entries that ``load_journal`` returns."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.entries, self.reads = inner, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load_journal(self, instance_id: str, run: Any, from_seq: int = 0) -> list[JournalEntry]:
        found: list[JournalEntry] = self.inner.load_journal(instance_id, run, from_seq)
        self.reads += 1
        self.entries += len(found)
        return found


def napping(n: int) -> Workflow:
    """``n`` steps with a 5 s sleep after each: every step starts in an invocation of its own."""

    def flow(event: Any, step: Any) -> Any:
        total = 0
        for i in range(n):
            total += step.do(f"s{i}", lambda i=i: i)
            step.sleep(f"z{i}", 5)
        return total

    return Workflow(name=f"nap{n}", fn=flow)


def entries_read(n: int, cache_mb: int) -> tuple[int, int]:
    h = Harness(napping(n), settings=Settings(journal_cache_mb=cache_mb))
    h.env.store = counter = ReadCounter(h.env.store)
    inst = h.start(f"nap{n}")
    h.run_until_idle()
    assert inst.status().output == n * (n - 1) // 2
    return counter.entries, counter.reads


def test_without_the_cache_reads_grow_as_n_squared() -> None:
    entries, reads = entries_read(20, cache_mb=0)
    assert reads == 20  # one full read per resume
    # 2 entries a step (2 + 4 + ... + 40), less the sleeps kept in the instance item: the first two fit.
    assert entries == sum(2 * k - min(k, 2) for k in range(1, 21))


def test_a_warm_container_does_not_read_its_own_journal_again() -> None:
    entries, reads = entries_read(20, cache_mb=64)
    assert (entries, reads) == (0, 0)  # every resume found the journal it wrote last


def test_another_container_in_between_makes_the_next_read_incremental() -> None:
    """Two containers take turns on one instance: each reads only entries the other wrote."""
    h = Harness(napping(6))
    other = Environment(
        store=h.env.store, queue=h.env.queue, clock=h.clock, registry=h.env.registry, blobs=h.env.blobs
    )
    h.env.store = counter = ReadCounter(h.env.store)
    other.store = counter
    inst = h.start("nap6")
    envs = [h.env, other]
    turn = 0
    while (due := h.queue.next_due()) is not None:
        h.clock.set(due)
        for body in h.queue.due():
            process_message(body, FakeContext(h.clock, 300), envs[turn % 2])
            turn += 1
    assert inst.status().output == 15
    assert [e.name for e in full_journal(h.store, inst.id, 1)][:4] == ["s0", "z0", "s1", "z1"]
    # Each container's resume reads from where its own copy ends: about 2 new entries, not all of them.
    assert counter.reads == 6 and counter.entries <= 2 + 4 * 2 + 4 * 2


def test_a_crash_in_another_container_since_our_release_makes_us_read() -> None:
    """A caches the journal; B takes the next wake-up, writes s1 and dies before releasing, so
    ``released_by`` still names A's lease. A must not trust its copy: the left lease says a crash."""
    from framework.core.faults import injected

    h = Harness(napping(3))
    a, b = (
        h.env,
        Environment(
            store=h.env.store, queue=h.env.queue, clock=h.clock, registry=h.env.registry, blobs=h.env.blobs
        ),
    )
    inst = h.start("nap3")
    h.run_due()  # A: s0, then the sleep; released, journal cached in A
    h.clock.advance(5)
    body = h.queue.due()[0]

    def die(where: str, info: dict[str, Any]) -> None:
        if where == "journal.after_write" and info["name"] == "s1":
            raise SystemExit("killed")

    with injected(die), pytest.raises(SystemExit):
        process_message(body, FakeContext(h.clock, 300), b)
    a.store = counter = ReadCounter(a.store)
    h.clock.advance(400)  # past B's lease
    assert process_message(body, FakeContext(h.clock, 300), a) is Outcome.SUSPENDED
    assert counter.reads == 1 and counter.entries == 1  # A read what B wrote after its copy: s1
    h.run_until_idle()
    assert inst.status().output == 3
    assert [e.name for e in full_journal(h.store, inst.id, 1)] == ["s0", "z0", "s1", "z1", "s2", "z2"]


def test_a_run_past_max_history_errors_and_cannot_be_caught() -> None:
    def flow(event: Any, step: Any) -> Any:
        try:
            for i in range(10):
                step.do(f"s{i}", lambda: None)
        except Exception:
            return "swallowed"
        return "done"

    h = Harness(Workflow("long", flow), settings=Settings(max_history=4))
    inst = h.start("long")
    h.run_until_idle()
    status = inst.status()
    assert status.status == "errored" and status.error is not None
    assert status.error["name"] == "HistoryLimitError"
    assert "4 durable calls" in status.error["message"] and "WORKFLOWS_MAX_HISTORY" in status.error["message"]
    assert len(full_journal(h.store, inst.id, 1)) == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_history", 0), ("max_history", 100_001), ("journal_cache_mb", -1), ("park_lead", 800.0)],
)
def test_settings_refuse_bad_limits(name: str, value: int) -> None:
    from framework.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match=f"WORKFLOWS_{name.upper()}"):
        Settings(**{name: value})
    with pytest.raises(InvalidConfigError):
        Settings.from_env({f"WORKFLOWS_{name.upper()}": str(value)})
