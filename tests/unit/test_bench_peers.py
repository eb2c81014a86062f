"""bench.peers_map's figures from timed rounds, and bench.peers_doc's markdown of them, on hand-made
rounds: the peers themselves are not installed in this venv."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bench.peers_doc import HEADING, splice, workload_rows, workloads_section
from bench.peers_map import Measured, case_figures, over_ours, per_unit, spread


def test_spread_rounds_and_takes_median_min_max() -> None:
    assert spread([3.0, 1.0, 2.0004]) == {"per_round": [3.0, 1.0, 2.0], "median": 2.0, "min": 1.0, "max": 3.0}
    assert spread([0.012345, 0.0091])["per_round"] == [0.0123, 0.0091]  # significant figures, not places


def test_over_ours_is_their_wall_over_ours_round_by_round() -> None:
    ratio = over_ours([2.0, 4.0, 1.0], [1.0, 2.0, 3.0])
    assert ratio["per_round"] == [0.5, 0.5, 3.0]
    assert (ratio["median"], ratio["min"], ratio["max"]) == (0.5, 0.5, 3.0)


@pytest.mark.parametrize(("ours", "theirs"), [([1.0], [1.0, 2.0]), ([], [])])
def test_over_ours_needs_paired_rounds(ours: list[float], theirs: list[float]) -> None:
    with pytest.raises(ValueError, match="do not pair"):
        over_ours(ours, theirs)


def test_per_unit_takes_the_worst_round_and_shows_rounds_that_differ() -> None:
    runs = [
        Measured(1.0, Counter({"dynamodb.PutItem": 20, "sqs.SendMessage": 1}), invocations=1),
        Measured(1.0, Counter({"dynamodb.PutItem": 20, "dynamodb.GetItem": 2, "sqs.SendMessage": 1}), 1),
    ]
    found = per_unit(runs, 10)
    assert found["dynamodb_calls_per_unit"] == 2.2  # SQS calls are not DynamoDB calls
    assert found["worker_invocations_per_unit"] == 0.1
    calls = {"dynamodb.GetItem": 0.2, "dynamodb.PutItem": 2.0, "sqs.SendMessage": 0.1}
    assert found["calls_per_unit"] == calls
    assert found["dynamodb_calls_per_unit_per_round"] == [2.0, 2.2]
    assert "worker_invocations_per_unit_per_round" not in found  # the same in every round


def test_case_figures_pairs_each_peer_with_ours_and_skips_one_that_failed() -> None:
    counted = [Measured(2.0, Counter({"dynamodb.PutItem": 4}), 2)]
    walls = {"ours": [2.0], "aws": [1.0], "dbos": []}
    figures = case_figures(walls, counted, 2)
    assert figures["aws"]["wall_over_ours"]["median"] == 0.5
    assert "dbos" not in figures
    assert figures["ours"]["dynamodb_calls_per_unit"] == 2
    assert case_figures({"aws": [1.0]}, [], 2) == {}  # no rounds of ours: nothing to compare with


def _doc() -> dict[str, Any]:
    ratio = {"per_round": [0.25, 0.3], "median": 0.28, "min": 0.25, "max": 0.3}
    return {
        "workloads": {
            "map": {
                "unit": "item",
                "size": 1000,
                "warmup": 100,
                "runs": 2,
                "note": "ours runs each item as a child instance",
                "systems": {"ours": {"label": "ours"}, "aws": {"label": "AWS runner"}},
                "cases": [
                    {
                        "max_concurrency": 10,
                        "aws": {"wall_over_ours": ratio},
                        "ours": {
                            "dynamodb_calls_per_unit": 3.5,
                            "worker_invocations_per_unit": 0.2,
                            "calls_per_unit": {"dynamodb.PutItem": 3.5, "sqs.SendMessage": 1},
                        },
                    }
                ],
            },
            "parallel": {
                "unit": "instance",
                "runs": 2,
                "systems": {"ours": {"label": "ours"}, "aws": {"label": "AWS runner", "unavailable": "boom"}},
                "cases": [{"max_concurrency": "all", "ours": {"dynamodb_calls_per_unit": 10}}],
            },
        }
    }


def test_workload_rows_give_each_case_the_peer_ratio_and_our_counts() -> None:
    header, rows = workload_rows("map", _doc()["workloads"]["map"])
    assert header[2] == "AWS runner: wall / ours"
    assert header[3] == "ours: DynamoDB calls per item"
    ops = "PutItem 3.5, SendMessage 1"
    assert rows == [["map, 1,000 items", "10", "0.28 (0.25 to 0.3)", "3.5", "0.2", ops]]


def test_a_peer_with_no_figures_gets_no_column_and_its_reason_is_said() -> None:
    doc = _doc()
    header, rows = workload_rows("parallel", doc["workloads"]["parallel"])
    assert not any("AWS runner" in h for h in header)
    assert rows[0][:3] == ["parallel, ? instances", "all", "10"]
    text = "\n".join(workloads_section(doc))
    assert "AWS runner not measured: boom" in text
    assert "ours runs each item as a child instance" in text
    assert "2 rounds after a warm-up of 100 items" in text


def test_no_workloads_no_section() -> None:
    assert workloads_section({"systems": {}}) == []
    assert "not an object" in "\n".join(workloads_section({"workloads": {"map": [1]}}))


def test_splice_replaces_only_the_map_and_parallel_part() -> None:
    doc = "# Performance\n\n## Peers\n\nchain\n\n### Map and parallel\n\nold\n\n## Later\n\nkept\n"
    assert splice(doc, ["### Map and parallel", "", "new", ""]) == (
        "# Performance\n\n## Peers\n\nchain\n\n### Map and parallel\n\nnew\n\n## Later\n\nkept\n"
    )
    assert splice("# P\n\n## Peers\n\nchain\n", ["### Map and parallel", "", "new"]) == (
        "# P\n\n## Peers\n\nchain\n\n### Map and parallel\n\nnew\n"
    )
    assert splice("# P\n\n### Map and parallel\n\nold\n", []) == "# P\n"


def test_the_full_render_and_the_splice_agree() -> None:
    from bench import perfdoc

    images = perfdoc._Images(perfdoc.IMG)
    images.problem = "not drawn in tests"
    full = perfdoc.render({"sections": []}, _doc(), images)
    assert full.count(HEADING) == 1
    assert splice(full, workloads_section(_doc())) == full


def test_the_rendered_doc_leads_nowhere_outside_the_repository() -> None:
    """docs/performance.md stands alone (tests/e2e/test_docs_commands.py checks the file): its
    generator cites the design notes by name, with no path out of the repository and no web link."""
    import re

    from bench import perfdoc

    images = perfdoc._Images(perfdoc.IMG)
    images.problem = "not drawn in tests"
    full = perfdoc.render({"sections": []}, _doc(), images)
    assert "cost model" in full
    assert re.findall(r"\.\./|https?://|www\.", full) == []
