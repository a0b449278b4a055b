"""Two agents chained through a topic: claims triage -> claims-decisions -> claims compliance.

Both jobs run through ``streaming-agents run`` (bounded, in process), one after the
other, against the session's broker and one fake LLM scripted with both jobs'
rules as ``streaming-agents fake-llm-config`` combines them.  Every claim triage
routes to ``human_review`` must get exactly one compliance review with the verdict
expected from the claim; the other decisions are skipped.
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
from streaming_agents.runtime.keys import MALFORMED_KEY, json_key
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed

TRIAGE = load_job("claims_triage")
COMPLIANCE = load_job("claims_compliance")
compliance = COMPLIANCE.module
CLAIMS = 18


def triage_route(claim: dict[str, Any]) -> str:
    if re.search(r"\b(stolen|cash)\b", claim["description"], re.IGNORECASE):
        return "human_review"
    return "request_more_info" if not claim["documents"] else "auto_approve"


def verdict(claim: dict[str, Any]) -> str:
    """The compliance verdict for a claim triage flagged, from the claim itself."""
    text = claim["description"].lower()
    if claim["amount"] >= 10000 or re.search(r"\bcash\b", text):
        return "refer_to_siu"  # fraud score 0.93 above 10,000; cash: anti-money-laundering
    if "police_report.pdf" in claim["documents"]:
        return "approve_with_conditions"
    return "request_police_report"


def combined_rules(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["fake-llm-config", "claims_compliance", "claims_triage"]) == 0
    config: dict[str, Any] = json.loads(capsys.readouterr().out)
    return config


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    assert code == 0, capsys.readouterr().err


def test_case_of_a_triage_output() -> None:
    envelope = {
        "agent": "claims-triage",
        "version": "1",
        "trace_id": "t-1",
        "input": {
            "claim_id": "C1",
            "policy_id": "P1",
            "customer": "Ada",
            "amount": 12.5,
            "description": "Bike stolen",
            "documents": [],
        },
        "output": {"claim_id": "C1", "route": "human_review", "fraud_score": 0.78, "reasons": []},
    }
    assert compliance.needs_review(envelope)
    assert json_key("input.policy_id")(json.dumps(envelope)) == "P1"
    case = compliance.case_of(envelope)
    assert (case.claim_id, case.triage_trace_id, case.fraud_score) == ("C1", "t-1", 0.78)
    approved = {**envelope, "output": {**envelope["output"], "route": "auto_approve"}}
    assert not compliance.needs_review(approved)
    assert compliance.needs_review({"output": "?"})  # kept, so it is dead-lettered, not lost
    assert json_key("input.policy_id")("not json") == MALFORMED_KEY


def test_triage_then_compliance_through_the_decisions_topic(
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    claims, decisions = topic_factory("chain-claims"), topic_factory("chain-decisions")
    triage_dlq, reviews = topic_factory("chain-triage-dlq"), topic_factory("chain-reviews")
    compliance_dlq = topic_factory("chain-compliance-dlq")
    fake_llm.configure(combined_rules(capsys))
    common = ["--bootstrap", kafka_bootstrap, "--model", "openai/claims-fake"]
    common += ["--api-base", fake_llm.base_url, "--api-key-env", "FAKE_LLM_API_KEY"]
    common += ["--journal-dir", str(tmp_path), "--bounded", "--checkpoint-ms", "500"]

    run(
        [
            "run",
            "claims_triage",
            *common,
            "--sample",
            str(CLAIMS),
            "--topic",
            f"claims={claims}",
            "--topic",
            f"decisions={decisions}",
            "--topic",
            f"dlq={triage_dlq}",
        ],
        capsys,
    )
    records = TRIAGE.module.generate_claims(CLAIMS, 42)
    valid = {r["claim_id"]: r for r in records if isinstance(r, dict)}
    triaged = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, decisions, expected=len(valid))
    ]
    assert sorted(d["output"]["claim_id"] for d in triaged) == sorted(valid)
    for decision in triaged:
        assert decision["output"]["route"] == triage_route(valid[decision["output"]["claim_id"]])
    flagged = {
        d["output"]["claim_id"]: d for d in triaged if d["output"]["route"] == "human_review"
    }
    assert 0 < len(flagged) < len(triaged)

    run(
        [
            "run",
            "claims_compliance",
            *common,
            "--topic",
            f"decisions={decisions}",
            "--topic",
            f"reviews={reviews}",
            "--topic",
            f"dlq={compliance_dlq}",
        ],
        capsys,
    )
    got = [
        json.loads(m.value())
        for m in consume_committed(kafka_bootstrap, reviews, expected=len(flagged), linger_s=1.0)
    ]
    assert sorted(r["output"]["claim_id"] for r in got) == sorted(flagged), "one review per flag"
    assert consume_committed(kafka_bootstrap, compliance_dlq, idle_s=1.0) == []
    turns: dict[str, list[int]] = {}
    for review in got:
        out = review["output"]
        decision = flagged[out["claim_id"]]
        claim = valid[out["claim_id"]]
        assert review["agent"] == "claims-compliance"
        assert review["key"] == claim["policy_id"] == out["policy_id"]
        assert out["verdict"] == verdict(claim), (claim, out)
        assert out["escalation"] in ("siu", "senior_adjuster")
        # the review points back at the triage decision it came from
        assert out["triage"]["trace_id"] == decision["trace_id"] != ""
        assert out["triage"]["fraud_score"] == decision["output"]["fraud_score"]
        turns.setdefault(review["key"], []).append(review["turn"])
    for policy, seen in turns.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), policy
