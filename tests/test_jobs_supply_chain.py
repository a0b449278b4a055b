"""The supply-chain job end to end: three topics, one agent per region, context in memory.

The job runs unbounded on the mini-cluster.  Weather alerts are written first
and their assessments awaited, then stock levels and shipment positions: so
every stock and position event is judged with its region's weather already in
the agent's memory (the union of three topics has no order across topics).
Expectations are written here from the records, independently of the job's
fake-LLM rules.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streaming_agents import ModelSpec, SqliteJournal
from streaming_agents.registry import load_job
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed, produce

JOB = load_job("supply_chain")
job = JOB.module
TYPE_OF_ROLE = {"positions": "position", "stock": "stock", "weather": "weather"}


def valid(role: str, value: str) -> dict[str, Any] | None:
    """The record as the agent sees it (tagged), or None if the job must dead-letter it."""
    try:
        record = json.loads(value)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    tagged = {**record, "type": TYPE_OF_ROLE[role]}
    try:
        job.parse_event(tagged)
    except ValueError:
        return None
    return tagged


def expected(event: dict[str, Any], severe: dict[str, list[str]]) -> tuple[str, str, str]:
    """(risk, action kind, action target) for an event, given the severe alerts per region."""
    region_severe = bool(severe.get(event["region"]))
    if event["type"] == "weather":
        if event["severity"] in ("severe", "extreme"):
            return "high", "hold_shipments", event["region"]
        return "low", "monitor", event["region"]
    if event["type"] == "stock":
        target = event["warehouse_id"]
        if event["on_hand"] < event["reorder_point"]:
            if region_severe:
                return "high", "transfer_stock", target
            return "medium", "expedite_replenishment", target
        return "low", "none", target
    target = event["shipment_id"]
    if event["status"] != "delivered" and region_severe:
        return "high", "reroute", target
    if event["status"] == "delayed":
        return "medium", "notify_customer", target
    return "low", "none", target


def event_id(event: dict[str, Any]) -> str:
    if event["type"] == "weather":
        return str(event["alert_id"])
    if event["type"] == "stock":
        return f"{event['warehouse_id']}/{event['sku']}"
    return str(event["shipment_id"])


def read(bootstrap: str, topic: str, expected_count: int, timeout_s: float = 150) -> list[Any]:
    got = consume_committed(
        bootstrap, topic, expected=expected_count, timeout_s=timeout_s, linger_s=1.0
    )
    return [json.loads(m.value()) for m in got]


def test_sample_data_is_deterministic_and_mixed() -> None:
    first, again = job.generate(48, 7), job.generate(48, 7)
    assert first == again
    roles = Counter(role for role, _, _ in first)
    assert set(roles) == {"weather", "stock", "positions"}
    assert [role for role, _, _ in first[: roles["weather"]]] == ["weather"] * roles["weather"]
    alerts = [json.loads(v) for r, _, v in first if r == "weather"]
    assert {"severe", "minor"} <= {a["severity"] for a in alerts}
    assert sum(valid(r, v) is None for r, _, v in first) == 48 // 12


def test_region_context_keeps_weather_stock_and_shipments() -> None:
    alert = job.parse_event(
        {
            "type": "weather",
            "alert_id": "A1",
            "region": "alps",
            "kind": "snow",
            "severity": "severe",
            "headline": "snow",
            "starts_at": "2025-03-10T06:00:00Z",
            "ends_at": "2025-03-10T18:00:00Z",
            "ts": "2025-03-10T06:00:00Z",
        }
    )
    stock = job.parse_event(
        {
            "type": "stock",
            "warehouse_id": "W1",
            "region": "alps",
            "sku": "S1",
            "on_hand": 3,
            "reorder_point": 10,
            "ts": "2025-03-10T07:00:00Z",
        }
    )
    ctx = job.RegionContext().apply(alert).apply(stock)
    assert ctx.severe_alerts() == ["A1"] and ctx.low_stock() == ["W1/S1"]
    text = job.render_event(stock, ctx)
    assert "BELOW reorder point" in text and "Severe weather in force: A1 snow (severe)" in text
    later = stock.model_copy(update={"ts": stock.ts.replace(hour=19), "on_hand": 30})
    ctx = ctx.apply(later)
    assert ctx.severe_alerts() == [] and ctx.low_stock() == []  # the alert expired at 18:00


def test_supply_chain_job_end_to_end(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> None:
    from streaming_agents.runtime.environment import local_env

    topics = {role: topic_factory(f"sc-{role}") for role in JOB.spec.topics}
    fake_llm.configure({"rules": job.fake_rules()})
    records = job.generate(24, 7)
    weather = [(k, v) for r, k, v in records if r == "weather"]
    rest = [(r, k, v) for r, k, v in records if r != "weather"]
    events: dict[str, list[dict[str, Any]]] = {r: [] for r in TYPE_OF_ROLE}
    bad = 0
    for role, _key, value in records:
        event = valid(role, value)
        if event is None:
            bad += 1
        else:
            events[role].append(event)
    assert bad >= 2 and events["stock"] and events["positions"]

    model = ModelSpec(
        model="openai/supply-chain-fake", api_base=fake_llm.base_url, api_key_env="FAKE_LLM_API_KEY"
    )
    env = local_env(checkpoint_interval_ms=500)
    job.build(
        env,
        kafka_bootstrap,
        topics,
        model,
        journal=SqliteJournal(tmp_path / "journal.sqlite"),
        group_id=f"sc-test-{topics['actions']}",
    )
    started = time.monotonic()
    client = env.execute_async("supply-chain-test")
    try:
        produce(kafka_bootstrap, topics["weather"], weather)
        first = read(kafka_bootstrap, topics["actions"], len(weather))
        assert len(first) == len(weather), first
        phase_one = time.monotonic() - started
        for role in ("stock", "positions"):
            produce(kafka_bootstrap, topics[role], [(k, v) for r, k, v in rest if r == role])
        valid_count = len(events["weather"]) + len(events["stock"]) + len(events["positions"])
        outputs = read(kafka_bootstrap, topics["actions"], valid_count)
        dead = read(kafka_bootstrap, topics["dlq"], bad, timeout_s=30)
        expected_notes = sum(len(o["output"]["notifications"]) for o in outputs)
        notes = read(kafka_bootstrap, topics["notifications"], expected_notes, timeout_s=30)
    finally:
        client.cancel().result()
    print(f"supply chain job: weather {phase_one:.1f} s, all {time.monotonic() - started:.1f} s")

    severe: dict[str, list[str]] = {}
    for alert in events["weather"]:
        if alert["severity"] in ("severe", "extreme"):
            severe.setdefault(alert["region"], []).append(alert["alert_id"])

    assert len(outputs) == valid_count, "one assessment per valid event"
    by_id = {(o["output"]["event_type"], o["output"]["event_id"]): o for o in outputs}
    assert len(by_id) == valid_count, "no event assessed twice"
    turns: dict[str, list[int]] = {}
    for role, items in events.items():
        for event in items:
            record = by_id[(event["type"], event_id(event))]
            out = record["output"]
            risk, kind, target = expected(event, severe)
            assert record["key"] == event["region"] == out["region"]
            assert (out["risk"], out["actions"][0]["kind"], out["actions"][0]["target"]) == (
                risk,
                kind,
                target,
            ), (role, event, out)
            if event["type"] != "weather":
                # judged with its region's weather in memory (written before it)
                assert out["context"]["severe_alerts"] == sorted(severe.get(event["region"], []))
            turns.setdefault(record["key"], []).append(record["turn"])
    for region, seen in turns.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), (region, seen)

    assert len(dead) == bad
    assert {d["reason"] for d in dead} <= {"malformed event", "step failed"}

    assert expected_notes > 0
    assert len(notes) == expected_notes
    audiences = Counter(n["audience"] for n in notes)
    assert audiences["customer"] >= 1 and audiences["logistics"] >= 1
    assert all((n["event_type"], n["event_id"]) in by_id for n in notes)


@pytest.mark.parametrize("severity", ["severe", "minor"])
def test_fake_rules_answer_weather_by_severity(severity: str) -> None:
    """The fake rules read the rendered prompt, not the event (what a real model would see)."""
    import re

    alert = job.parse_event(
        {
            "type": "weather",
            "alert_id": "A1",
            "region": "alps",
            "kind": "snow",
            "severity": severity,
            "headline": "snow",
            "starts_at": "2025-03-10T06:00:00Z",
            "ends_at": "2025-03-10T18:00:00Z",
            "ts": "2025-03-10T06:00:00Z",
        }
    )
    text = job.render_event(alert, job.RegionContext().apply(alert))
    rule = next(r for r in job.fake_rules() if re.search(r["match"], text))
    assert rule["json"]["risk"] == ("high" if severity == "severe" else "low")
