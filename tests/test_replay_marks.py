"""A shadow run's marks say how its memory started, so ``compare`` alone can show it.

No Flink, no broker: outputs are marked by the same :class:`ShadowMark` map
function the replay and shadow jobs run (over the JSON lines the agent operator
emits), then compared and rendered as ``compare`` does.  The memory start must
reach the headline of both the terminal table and the HTML page, and the JSON.
"""

from __future__ import annotations

import json
from typing import Any

from streaming_agents.replay import compare_outputs, render_html, render_table
from streaming_agents.replay.memory_start import MemoryStart
from streaming_agents.replay.report_data import RunInfo, headline
from streaming_agents.replay.runs import ShadowMark


def _output(key: str, seq: int, route: str, version: str) -> dict[str, Any]:
    return {
        "agent": "claims-triage",
        "version": version,
        "key": key,
        "input": {"claim_id": f"{key}-{seq}"},
        "output": {"route": route},
        "turn": seq,
        "usage": {"llm_calls": 1, "model": "openai/fake"},
    }


def _marked(mark: ShadowMark, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the job writes: each output line through the mark, read back as JSON."""
    return [json.loads(mark(json.dumps(doc))) for doc in docs]


def _sides() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    prod = [_output(k, s, "auto_approve", "1") for k in ("p1", "p2") for s in (4, 5)]
    cand = [_output(k, s, "auto_approve", "2") for k in ("p1", "p2") for s in (4, 5)]
    cand[1]["output"] = {"route": "human_review"}
    return prod, cand


def _memory_row(report: Any) -> str:
    return dict(headline(report))["memory start"]


def test_marks_carry_the_memory_start_and_compare_alone_shows_it() -> None:
    start = MemoryStart("savepoint", "/sp/savepoint-1a2b", "agent-claims-triage", {0: 8, 1: 3})
    prod, cand = _sides()
    mark = ShadowMark("claims-triage-2-run", "claims", memory_start=start.to_dict())
    marked = _marked(mark, cand)
    assert marked[0]["shadow"] is True
    assert marked[0]["replay"] == {
        "run": "claims-triage-2-run",
        "topic": "claims",
        "memory_start": {
            "kind": "savepoint",
            "savepoint": "/sp/savepoint-1a2b",
            "agent_uid": "agent-claims-triage",
            "offsets": {"0": 8, "1": 3},
        },
    }
    dead = ShadowMark("claims-triage-2-run", "claims", True, start.to_dict())
    letter = json.loads(dead(json.dumps({"reason": "over budget", "key": "p3", "payload": {}})))
    assert letter["dead_letter"] is True and letter["replay"]["memory_start"]["kind"] == "savepoint"

    report = compare_outputs(prod, marked, run_id="claims-triage-2-run")  # compare alone: no run
    expected = start.describe()
    assert "savepoint /sp/savepoint-1a2b" in expected and "p0=8,p1=3" in expected
    assert report.run is None and report.memory_start == expected
    assert _memory_row(report) == expected
    table = render_table(report)
    rows = [line.strip() for line in table.splitlines() if line.strip().startswith("memory start")]
    assert len(rows) == 1 and rows[0].endswith(expected), table
    page = render_html(report)
    assert "<th>memory start</th><td>production&#x27;s, from savepoint /sp/savepoint-1a2b" in page
    assert report.to_dict()["memory_start"] == expected
    assert report.to_dict()["headline"]["memory start"] == expected


def test_an_empty_start_is_marked_and_unmarked_outputs_say_so() -> None:
    prod, cand = _sides()
    empty = _marked(ShadowMark("r-empty", "claims", memory_start=MemoryStart().to_dict()), cand)
    report = compare_outputs(prod, empty, run_id="r-empty")
    assert _memory_row(report).startswith("empty")

    old = _marked(ShadowMark("r-old", "claims"), cand)  # a run marked before marks carried it
    assert "memory_start" not in old[0]["replay"]
    unmarked = compare_outputs(prod, old, run_id="r-old")
    assert unmarked.memory_start is None
    assert _memory_row(unmarked) == "not recorded in the candidate's outputs"


def test_a_replay_s_own_account_comes_first_and_mixed_marks_are_counted() -> None:
    prod, cand = _sides()
    saved = MemoryStart("savepoint", "/sp/a", "agent-claims-triage", {0: 8}).to_dict()
    mixed = _marked(ShadowMark("r", "claims", memory_start=saved), cand[:3])
    mixed += _marked(ShadowMark("r", "claims", memory_start=MemoryStart().to_dict()), cand[3:])
    report = compare_outputs(prod, mixed, run_id="r")
    assert report.memory_start is not None
    assert "(3 outputs)" in report.memory_start and "(1 outputs)" in report.memory_start
    assert report.memory_start.index("/sp/a") < report.memory_start.index("empty")
    report.run = RunInfo(memory_start="production's, from savepoint /sp/b")
    assert _memory_row(report) == "production's, from savepoint /sp/b"


def test_memory_start_from_a_mark_survives_odd_values() -> None:
    assert MemoryStart.from_dict(None) is None
    assert MemoryStart.from_dict({"kind": 3}) is None
    odd = MemoryStart.from_dict({"kind": "savepoint", "savepoint": "/x", "offsets": "?"})
    assert odd is not None and odd.offsets == {} and "savepoint /x" in odd.describe()
    future = MemoryStart.from_dict({"kind": "journal", "savepoint": None})
    assert future is not None and future.describe() == "journal"
