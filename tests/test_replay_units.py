"""Replay pieces without Flink: ranges, the comparison, HTML, the request record, CLI errors."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from streaming_agents import LLMRequest, SqliteJournal
from streaming_agents.cli.main import main
from streaming_agents.replay import (
    BadRange,
    NoOverlap,
    Position,
    ReplayRange,
    SchemaMismatch,
    compare_outputs,
    find_divergences,
    parse_position,
    render_html,
    render_table,
)
from streaming_agents.replay.compare import percentile
from streaming_agents.replay.progress import ProgressBar
from streaming_agents.replay.topics import group_offsets, read_topic
from streaming_agents.testing.kafka import produce

# --------------------------------------------------------------------------- ranges


def test_positions_parse() -> None:
    assert parse_position("earliest") == Position.earliest()
    assert parse_position("latest") == Position.latest()
    assert parse_position("1714564800000") == Position.at_time(1714564800000)
    assert parse_position("2024-05-01T12:00:00Z") == Position.at_time(1714564800000)
    assert parse_position("2024-05-01T14:00:00+02:00") == Position.at_time(1714564800000)
    assert parse_position("2024-05-01T12:00:00") == Position.at_time(1714564800000)  # UTC
    assert parse_position("offset:42") == Position.at_offset(42)
    assert parse_position("offset:0=5,2=7") == Position.at_offset({0: 5, 2: 7})
    for bad in ("yesterday", "offset:x", "offset:0=1,"):
        with pytest.raises(BadRange):
            parse_position(bad)


def test_range_checks_without_a_broker() -> None:
    now = int(time.time() * 1000)
    with pytest.raises(BadRange, match="after"):
        ReplayRange.between(now - 1000, now - 5000).check()
    with pytest.raises(BadRange, match="future"):
        ReplayRange.between(now - 1000, now + 3_600_000).check()
    with pytest.raises(BadRange, match="empty"):
        ReplayRange.between(now - 1000, now - 1000).check()
    with pytest.raises(BadRange, match="after"):
        ReplayRange.offsets(10, 3).check()
    ReplayRange.between(now - 5000, now).check()  # fine


def test_range_resolves_to_offsets(kafka_bootstrap: str, topic_factory: Any) -> None:
    from confluent_kafka import Producer

    topic = topic_factory("hist", partitions=2)
    base = int(time.time() * 1000) - 600_000
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):  # partition i % 2, timestamps base + i s
        producer.produce(topic, value=f"{i}", partition=i % 2, timestamp=base + i * 1000)
    assert producer.flush(30) == 0
    resolved = ReplayRange.between(base + 2000, base + 7000).resolve(kafka_bootstrap, topic)
    # records 2..6: partition 0 holds 0,2,4,6,8 -> offsets 1..3; partition 1 holds 1,3,5,7,9 -> 1..2
    assert resolved.offsets == {0: (1, 4), 1: (1, 3)}
    assert resolved.expected == 5
    assert ReplayRange().resolve(kafka_bootstrap, topic).offsets == {0: (0, 5), 1: (0, 5)}
    assert ReplayRange.offsets(2, 4).resolve(kafka_bootstrap, topic).expected == 4
    with pytest.raises(BadRange, match="beyond the end"):
        ReplayRange.offsets(0, 9).resolve(kafka_bootstrap, topic)
    with pytest.raises(BadRange, match="no records"):
        ReplayRange.between(base - 60_000, base - 30_000).resolve(kafka_bootstrap, topic)
    with pytest.raises(BadRange, match="no partition 5"):
        ReplayRange(Position.at_offset({5: 0}), Position.latest()).resolve(kafka_bootstrap, topic)


# --------------------------------------------------------------------------- comparison


def _out(
    key: str, event: dict[str, Any], output: Any, *, prompt: int = 10, latency: float = 100.0
) -> dict[str, Any]:
    return {
        "agent": "a",
        "version": "1",
        "key": key,
        "input": event,
        "output": output,
        "turn": 1,
        "usage": {
            "llm_calls": 1,
            "prompt_tokens": prompt,
            "completion_tokens": 4,
            "cost_usd": 0.001,
            "latency_ms": latency,
        },
    }


def test_comparison_counts_agreement_fields_deltas_and_latency() -> None:
    prod = [
        _out(f"k{i}", {"n": i}, {"route": "a", "risk": 1}, latency=10.0 * (i + 1))
        for i in range(10)
    ]
    cand = [
        _out(f"k{i}", {"n": i}, {"route": "a", "risk": 1}, prompt=12, latency=20.0 * (i + 1))
        for i in range(8)  # k8, k9 only in production
    ]
    cand[2]["output"] = {"route": "b", "risk": 1}  # route differs
    cand[5]["output"] = {"route": "b", "risk": 3}  # both differ
    cand[7]["output"] = {"route": "a", "risk": 3, "extra": True}  # risk and a new field
    cand.append(_out("k99", {"n": 99}, {"route": "a", "risk": 1}))  # only in candidate
    report = compare_outputs(prod, cand)
    assert (report.matched, report.agreed) == (8, 5)
    assert report.agreement_rate == pytest.approx(5 / 8)
    assert len(report.only_production) == 2 and len(report.only_candidate) == 1
    fields = {f.field: (f.compared, f.agreed) for f in report.fields}
    assert fields == {"route": (8, 6), "risk": (8, 6), "extra": (1, 0)}
    assert [(c.key, c.fields) for c in report.differing] == [
        ("k2", ("route",)),
        ("k5", ("risk", "route")),
        ("k7", ("extra", "risk")),
    ]
    assert report.deltas["prompt_tokens"] == 8 * 2
    assert report.deltas["completion_tokens"] == 0
    assert report.deltas["cost_usd"] == pytest.approx(0.0)
    assert report.production.latency(50) == pytest.approx(45.0)  # 10..80 ms
    assert report.candidate.latency(50) == pytest.approx(90.0)
    assert report.candidate.latency(99) == pytest.approx(160 - 0.07 * 20, abs=1e-9)
    text = render_table(report)
    assert "62.5%" in text and "field route" in text and "+16" in text


def test_join_by_id_pairs_duplicates_in_order_and_text_outputs() -> None:
    prod = [_out("k", {"id": 7, "t": "x"}, "yes"), _out("k", {"id": 7, "t": "x"}, "no")]
    cand = [_out("k", {"id": 7, "t": "changed"}, "yes"), _out("k", {"id": 7}, "maybe")]
    report = compare_outputs(prod, cand)  # auto: joined by id although the inputs differ
    assert (report.matched, report.agreed, report.structured) == (2, 1, False)
    assert report.fields == []
    with pytest.raises(NoOverlap):
        compare_outputs(prod, cand, join="input")
    with pytest.raises(NoOverlap):
        compare_outputs([_out("k", {"t": 1}, "a")], [_out("k", {"t": 2}, "a")], join="input")
    with pytest.raises(SchemaMismatch):
        compare_outputs([_out("k", {"t": 1}, "a")], [_out("k", {"t": 1}, "a")], join="id")


def test_percentile_interpolates() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(range(101)), 90) == pytest.approx(90.0)


def test_html_is_self_contained_with_svg_charts() -> None:
    prod = [_out("k1", {"n": 1}, {"a": 1}), _out("k2", {"n": 2}, {"a": "<b>&"})]
    cand = [_out("k1", {"n": 1}, {"a": 2}), _out("k2", {"n": 2}, {"a": "<i>"})]
    page = render_html(compare_outputs(prod, cand))
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3
    for external in ("http://", "https://", "src=", "<link", "<script", "@import", "url("):
        assert external not in page, external
    # user text is escaped, also inside the inline diff's highlights
    assert "&lt;<del>b</del>&gt;<del>&amp;</del>" in page and "&lt;<ins>i</ins>&gt;" in page
    assert "<b>&" not in page and "<i>" not in page


# --------------------------------------------------------------------------- request record


def _request(*texts: str) -> LLMRequest:
    return LLMRequest(messages=tuple({"role": "user", "content": t} for t in texts))


def test_request_record_copy_and_divergence(tmp_path: Path) -> None:
    prod = SqliteJournal(tmp_path / "prod.sqlite")
    for key in ("a", "b"):
        for turn in (1, 2):
            req = _request(*(f"{key}{t}" for t in range(1, turn + 1)))
            prod.record_request(
                kind="llm",
                agent="ag",
                version="1",
                key=key,
                turn=turn,
                digest=f"{key}{turn}",
                body=req.canonical(),
                event=json.dumps({"key": key, "seq": turn}),
            )
    prod.close()
    copy = SqliteJournal.copy(tmp_path / "prod.sqlite", tmp_path / "run" / "copy.sqlite")
    since = copy.last_request_seq()
    assert since == 4
    # the re-run: key b diverges at turn 2 (and so on after); key a matches the record
    for turn, texts in ((2, ("b1", "B2!")), (3, ("b1", "B2!", "b3"))):
        copy.record_request(
            kind="llm",
            agent="ag",
            version="2",
            key="b",
            turn=turn,
            digest=f"new{turn}",
            body=_request(*texts).canonical(),
        )
    found = find_divergences(copy, "ag", since)
    assert [(d.key, d.turn, d.where, d.message_index) for d in found] == [("b", 2, "messages", 1)]
    assert found[0].recorded_message == {"role": "user", "content": "b2"}
    assert found[0].new_message == {"role": "user", "content": "B2!"}
    assert "turn 2" in found[0].describe()
    assert len(find_divergences(copy, "ag", since, first_per_key=False)) == 2
    assert SqliteJournal(tmp_path / "prod.sqlite").last_request_seq() == 4, "source untouched"
    with pytest.raises(Exception, match="will not overwrite"):
        SqliteJournal.copy(tmp_path / "prod.sqlite", tmp_path / "run" / "copy.sqlite")


def test_progress_bar_prints_quarters_when_not_a_terminal(
    kafka_bootstrap: str, topic_factory: Any
) -> None:
    topic = topic_factory("prog")
    out = io.StringIO()
    bar = ProgressBar(kafka_bootstrap, topic, 4, {0: 0}, stream=out, interval_s=0.05)
    with bar:
        produce(kafka_bootstrap, topic, [(None, "x")] * 4)
        time.sleep(1.0)
    bar.finish(4)
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("replay [##############################] 4/4 outputs")


# --------------------------------------------------------------------------- CLI errors


def _cli(capsys: Any, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_cli_bad_ranges_are_user_errors(capsys: Any) -> None:
    base = ["replay", "--agent", "x:y", "--topic", "t", "--shadow-topic", "s"]
    code, err = _cli(capsys, *base, "--from", "2024-05-02T00:00:00Z", "--to", "2024-05-01")
    assert code == 2 and "is after --to" in err
    code, err = _cli(capsys, *base, "--from", "2024-05-01", "--to", "2999-01-01T00:00:00Z")
    assert code == 2 and "in the future" in err
    code, err = _cli(capsys, *base, "--from", "last tuesday")
    assert code == 2 and "not a time or offset" in err
    code, err = _cli(capsys, *base, "--from", "earliest", "--to", "latest")
    assert code == 2 and "cannot import 'x'" in err


def test_cli_missing_topics_unsafe_targets_and_schema(
    capsys: Any, kafka_bootstrap: str, topic_factory: Any
) -> None:
    agent = "test_replay_units:tiny_agent"
    events = topic_factory("events")
    produce(kafka_bootstrap, events, [(None, json.dumps({"k": "a"}))])
    common = ["--bootstrap", kafka_bootstrap, "--agent", agent]
    code, err = _cli(
        capsys, "replay", *common, "--topic", "no-such-topic-x1", "--shadow-topic", "s-x1"
    )
    assert code == 2 and "'no-such-topic-x1' does not exist" in err
    code, err = _cli(capsys, "replay", *common, "--topic", events, "--shadow-topic", events)
    assert code == 2 and "is the topic being read" in err
    code, err = _cli(
        capsys,
        "replay",
        *common,
        "--topic",
        events,
        "--shadow-topic",
        "sh-x1",
        "--production-topic",
        "sh-x1",
    )
    assert code == 2 and "production output topic" in err
    code, err = _cli(capsys, "replay", *common, "--topic", events, "--shadow-topic", "sh-x2")
    assert code == 2 and "key field 'key'" in err  # events are keyed by "k"
    prod_like = topic_factory("prodlike")
    produce(kafka_bootstrap, prod_like, [(None, json.dumps(_out("a", {"k": "a"}, "hi")))])
    code, err = _cli(
        capsys, "replay", *common, "--key", "k", "--topic", events, "--shadow-topic", prod_like
    )
    assert code == 2 and "not shadow outputs" in err
    code, err = _cli(
        capsys,
        "compare",
        "--bootstrap",
        kafka_bootstrap,
        "--production",
        prod_like,
        "--candidate",
        events,
    )
    assert code == 2 and "is not an agent output" in err
    code, err = _cli(
        capsys,
        "compare",
        "--bootstrap",
        kafka_bootstrap,
        "--production",
        prod_like,
        "--candidate",
        "no-such-topic-x2",
    )
    assert code == 2 and "does not exist" in err
    assert read_topic(kafka_bootstrap, events)[0].value == json.dumps({"k": "a"}).encode()
    assert group_offsets(kafka_bootstrap, "never-used-group", events) == {0: -1001}


def tiny_agent() -> Any:
    from streaming_agents import Agent, ModelSpec

    return Agent(name="tiny", version="1", model=ModelSpec(model="openai/none"))
