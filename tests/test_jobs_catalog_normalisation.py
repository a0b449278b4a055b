"""The catalog normalisation job end to end through ``streaming-agents run`` (in process).

``run --sample N --bounded`` writes the job's sample records and runs the job on the
mini-cluster against the session's broker and the fake LLM (scripted with the job's
rules).  Each product must come out once with the category, issues and status
expected from the record itself (written here, independently of the job's rules).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.cli.main import main
from streaming_agents.registry import load_job
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed

JOB = load_job("catalog_normalisation")
job = JOB.module
SAMPLE, SEED = 24, 42
TAXONOMY = {
    "Shoes > Running": "apparel/footwear",
    "Footwear/Trainers": "apparel/footwear",
    "Kitchen > Cookware": "home/kitchen",
    "Home & Kitchen/Pots": "home/kitchen",
    "Computers > Laptops": "electronics/computers",
    "Electronics/Notebooks": "electronics/computers",
}


def expectation(product: dict[str, Any]) -> tuple[str, set[str], str]:
    """(category, issue codes, status) for a product record."""
    issues = set()
    if product.get("price") is None:
        issues.add("price_missing")
    attributes = {re.sub(r"\s+", "_", k.lower()): v for k, v in product["attributes"].items()}
    weight = attributes.get("weight") or attributes.get("net_weight")
    if weight == "heavy":
        issues.add("unit_unrecognised")
    colours = {v.lower() for k, v in attributes.items() if k in ("color", "colour")}
    if len(colours) > 1:
        issues.add("conflicting_attribute")
    if product["title"].strip().startswith("Red ") and colours == {"blue"}:
        issues.add("title_attribute_conflict")
    category = TAXONOMY.get(product["category"], "other")
    if category == "other":
        issues.add("category_unmapped")
    status = "rejected" if "price_missing" in issues else ("needs_review" if issues else "accepted")
    return category, issues, status


def product_or_none(value: str) -> dict[str, Any] | None:
    try:
        record = json.loads(value)
    except ValueError:
        return None
    if not isinstance(record, dict) or not record.get("title"):
        return None
    return record


def test_parse_measure_and_normalise() -> None:
    assert job.parse_measure("2.2 lbs", "kg").value == pytest.approx(0.998)
    assert job.parse_measure("500g", "kg").value == pytest.approx(0.5)
    assert job.parse_measure('15.6"', "cm").value == pytest.approx(39.624)
    assert job.parse_measure("128 fl oz", "l").value == pytest.approx(3.785)
    assert job.parse_measure("heavy", "kg") is None
    assert job.parse_measure("3 cm", "kg") is None  # a length is not a weight
    product = job.PartnerProduct.model_validate(
        {
            "partner_id": "P",
            "partner_sku": "S",
            "title": "  Red   Runner ",
            "brand": "acme  sports",
            "category": "Shoes > Running",
            "attributes": {"Color": "Blue", "colour": "Green", "Net Weight": "1 lb", "Size": "42"},
            "price": None,
        }
    )
    norm = job.normalise(product)
    assert norm.title == "Red Runner" and norm.brand == "Acme Sports"
    assert norm.measures["weight"].unit == "kg" and norm.attributes["size"] == "42"
    assert {i.code for i in norm.issues} == {"conflicting_attribute", "price_missing"}


def test_sample_data_is_deterministic_and_covers_every_case() -> None:
    records = job.generate(SAMPLE, SEED)
    assert records == job.generate(SAMPLE, SEED)
    products = [p for _, v in records if (p := product_or_none(v))]
    assert len(records) - len(products) == SAMPLE // 10
    codes = set().union(*(expectation(p)[1] for p in products))
    assert codes == {
        "price_missing",
        "unit_unrecognised",
        "conflicting_attribute",
        "title_attribute_conflict",
        "category_unmapped",
    }


def test_catalog_job_end_to_end_via_cli_run(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = {role: topic_factory(f"cat-{role}") for role in JOB.spec.topics}
    fake_llm.configure({"rules": job.fake_rules()})
    argv = ["run", "catalog_normalisation", "--bootstrap", kafka_bootstrap]
    argv += ["--model", "openai/catalog-fake", "--api-base", fake_llm.base_url]
    argv += ["--api-key-env", "FAKE_LLM_API_KEY", "--journal-dir", str(tmp_path)]
    argv += ["--sample", str(SAMPLE), "--seed", str(SEED), "--bounded", "--checkpoint-ms", "500"]
    for role, name in topics.items():
        argv += ["--topic", f"{role}={name}"]
    assert main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert f"wrote {SAMPLE} sample records to {topics['products']!r}" in err

    records = job.generate(SAMPLE, SEED)
    products = {p["partner_sku"]: p for _, v in records if (p := product_or_none(v))}
    outputs = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, topics["normalised"], expected=len(products))
    ]
    dead = [json.loads(m.value()) for m in consume_committed(kafka_bootstrap, topics["dlq"])]
    assert sorted(o["output"]["partner_sku"] for o in outputs) == sorted(products)
    assert len(dead) == len(records) - len(products)
    assert fake_llm.stats()["chat_total"] == len(products)  # malformed records cost no call

    turns: dict[str, list[int]] = {}
    for record in outputs:
        out = record["output"]
        product = products[out["partner_sku"]]
        category, issues, status = expectation(product)
        assert record["key"] == product["partner_id"] == out["partner_id"]
        assert out["category"] == category, (product, out)
        assert {i["code"] for i in out["issues"]} == issues, (product, out)
        assert out["status"] == status
        assert out["title"] == " ".join(product["title"].split())
        assert out["currency"] == "EUR"
        assert all(m["unit"] in ("kg", "cm", "l") for m in out["measures"].values())
        turns.setdefault(record["key"], []).append(record["turn"])
    for partner, seen in turns.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), partner
