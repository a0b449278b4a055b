"""Deterministic triage outputs for the compliance job, and fake-LLM rules that answer them.

In production the input is what the triage job writes; for trying the job on
its own, ``generate(n, seed)`` returns ``n`` records ``(key, value)`` shaped like
triage outputs (the runtime's envelope around a claim and its decision).  About
two thirds are routed to ``human_review`` (a theft with or without a police
report, a cash payment, some above 10,000 with a fraud score of 0.93), the rest
are ``auto_approve`` or ``request_more_info`` and are skipped by the job;
``n // 10`` records are malformed and end up on the dead-letter topic.

``fake_rules()`` scripts the fake LLM.  Every rule is anchored on the first
line of the compliance prompt (``Compliance review of claim``), so the rules
can be combined with the triage job's on one fake LLM without answering its
prompts.
"""

from __future__ import annotations

import json
import random
from typing import Any

__all__ = ["fake_rules", "generate", "review_reply"]

_HEADER = r"(?ims)\ACompliance review of claim .*"

_FLAGGED = (
    ("Laptop and jewellery stolen from the car; no police report filed yet.", []),
    ("Road bike stolen outside the gym.", ["police_report.pdf", "receipt.pdf"]),
    ("Contractor only accepts cash, please pay the full amount up front.", ["estimate.pdf"]),
    ("Phone stolen abroad; it was bought second-hand for cash.", ["photo.jpg"]),
    ("Watch stolen during a burglary.", ["police_report.pdf", "photos.zip"]),
)
_CLEAN = (
    ("Burst pipe under the kitchen sink flooded the floor overnight.", ["photos.zip"]),
    ("Hailstorm cracked the windscreen.", []),
)


def _envelope(rng: random.Random, index: int, policies: int) -> dict[str, Any]:
    flagged = index % 3 != 2
    description, documents = rng.choice(_FLAGGED if flagged else _CLEAN)
    amount = round(rng.uniform(400, 15000) if flagged else rng.uniform(150, 3000), 2)
    policy = f"POL-{2001 + rng.randrange(policies)}"
    claim = {
        "claim_id": f"CLM-{5001 + index}",
        "policy_id": policy,
        "customer": rng.choice(("Ada Lovelace", "Alan Turing", "Grace Hopper", "Frances Allen")),
        "amount": amount,
        "description": description,
        "documents": list(documents),
    }
    if flagged:
        score = 0.93 if amount >= 10000 else 0.78
        decision = {"route": "human_review", "fraud_score": score, "reasons": ["fraud indicator"]}
    elif documents:
        decision = {"route": "auto_approve", "fraud_score": 0.04, "reasons": ["covered event"]}
    else:
        decision = {"route": "request_more_info", "fraud_score": 0.1, "reasons": ["no documents"]}
    return {
        "agent": "claims-triage",
        "version": "1",
        "key": policy,
        "input": claim,
        "output": {"claim_id": claim["claim_id"], **decision},
        "turn": 1,
        "trace_id": f"sample-{index:04d}",
    }


def generate(n: int, seed: int = 5) -> list[tuple[str | None, str]]:
    """``n`` triage-output records ``(key, value)``; ``n // 10`` of them malformed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    policies = max(2, n // 3)
    malformed = set(rng.sample(range(n), n // 10))
    records: list[tuple[str | None, str]] = []
    for index in range(n):
        if index in malformed:
            if index % 2:
                records.append((None, '{"agent": "claims-triage", "output": {"route": "hum'))
            else:  # routed to human review, but the claim is missing
                bad = {"agent": "claims-triage", "output": {"route": "human_review"}}
                records.append((None, json.dumps(bad)))
            continue
        envelope = _envelope(rng, index, policies)
        records.append((envelope["key"], json.dumps(envelope)))
    return records


def review_reply(
    verdict: str, escalation: str, checks: list[tuple[str, bool, str]], notice: str
) -> dict[str, Any]:
    """A ComplianceReview reply (``claim_id`` empty: the job takes it from the case)."""
    return {
        "claim_id": "",
        "verdict": verdict,
        "checks": [{"rule": r, "passed": p, "note": note} for r, p, note in checks],
        "escalation": escalation,
        "customer_notice": notice,
    }


def fake_rules() -> list[dict[str, Any]]:
    """Fraud score >= 0.9 or cash -> refer_to_siu; a theft with a police report ->
    approve_with_conditions, without -> request_police_report; anything else ->
    approve_with_conditions."""
    return [
        {
            "match": _HEADER + r"^Fraud score: (0\.9\d|1\.00)$",
            "json": review_reply(
                "refer_to_siu",
                "siu",
                [("fraud score below 0.9", False, "triage fraud score at or above 0.9")],
                "Your claim is being reviewed by our investigations team.",
            ),
        },
        {
            "match": _HEADER + r"^Description:[^\n]*\bcash\b",
            "json": review_reply(
                "refer_to_siu",
                "siu",
                [("no cash settlement (anti-money-laundering)", False, "cash payment requested")],
                "We cannot settle claims in cash; your claim is under review.",
            ),
        },
        {
            "match": _HEADER
            + r"^Description:[^\n]*\bstolen\b[^\n]*\nDocuments:[^\n]*police_report",
            "json": review_reply(
                "approve_with_conditions",
                "senior_adjuster",
                [("police report for theft", True, "police report attached")],
                "Your claim can be paid once you send proof of ownership.",
            ),
        },
        {
            "match": _HEADER + r"^Description:[^\n]*\bstolen\b",
            "json": review_reply(
                "request_police_report",
                "senior_adjuster",
                [("police report for theft", False, "no police report attached")],
                "Please send the police report for the theft.",
            ),
        },
        {
            "match": r"\ACompliance review of claim ",
            "json": review_reply(
                "approve_with_conditions",
                "none",
                [("documents present", True, "")],
                "Your claim will be paid after the standard checks.",
            ),
        },
    ]
