"""Deterministic sample claims for the triage job, including a few malformed records.

``generate_claims(n, seed)`` returns ``n`` records in production order: claims
as dicts and malformed records as raw strings (to be written to Kafka as they
are, so they reach the dead-letter topic).  About a sixth are malformed; of
the claims, roughly half are clean and complete, a quarter carry a fraud
indicator (a theft or a cash payment in the description) and a quarter have
no documents attached.
"""

from __future__ import annotations

import json
import random
from typing import Any

__all__ = ["generate_claims"]

_CUSTOMERS = (
    "Ada Lovelace",
    "Alan Turing",
    "Grace Hopper",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "John McCarthy",
)

_CLEAN = (
    "Rear-ended at a red light on Elm Street; bumper and tail light damaged.",
    "Burst pipe under the kitchen sink flooded the floor overnight.",
    "Hailstorm cracked the windscreen while the car was parked at home.",
    "Tree branch fell on the garage roof during Tuesday's storm.",
    "Water leak from the upstairs flat stained the bedroom ceiling.",
    "Lightning strike damaged the boiler control board.",
)

_SUSPICIOUS = (
    "Laptop and jewellery stolen from the car; no police report filed yet.",
    "Contractor only accepts cash, please pay the full amount up front.",
    "Road bike stolen outside the gym, the receipt was lost.",
    "Phone stolen abroad; it was bought second-hand for cash.",
)

_DOCUMENTS = (
    ["photos.zip", "repair_estimate.pdf"],
    ["photo_1.jpg", "photo_2.jpg", "invoice.pdf"],
    ["police_report.pdf", "photos.zip"],
    ["repair_estimate.pdf"],
)

# clean, suspicious, clean, incomplete: half clean, a quarter of each other kind
_PATTERN = ("clean", "suspicious", "clean", "incomplete")


def _claim(rng: random.Random, index: int, kind: str, policies: int) -> dict[str, Any]:
    if kind == "suspicious":
        description = rng.choice(_SUSPICIOUS)
        amount = rng.uniform(2500, 12000)
        documents = list(rng.choice(_DOCUMENTS)) if rng.random() < 0.5 else []
    else:
        description = rng.choice(_CLEAN)
        amount = rng.uniform(150, 4000)
        documents = list(rng.choice(_DOCUMENTS)) if kind == "clean" else []
    return {
        "claim_id": f"CLM-{index + 1:04d}",
        "policy_id": f"POL-{1001 + rng.randrange(policies)}",
        "customer": rng.choice(_CUSTOMERS),
        "amount": round(amount, 2),
        "description": description,
        "documents": documents,
    }


def _malformed(rng: random.Random, index: int, variant: int, policies: int) -> str:
    claim_id, policy_id = f"CLM-{index + 1:04d}", f"POL-{1001 + rng.randrange(policies)}"
    if variant == 0:  # truncated JSON
        return f'{{"claim_id": "{claim_id}", "policy_id": "{policy_id}", "amount": 1200.0, "descr'
    if variant == 1:  # not JSON at all
        return f"claim {claim_id}: broken window, please call me back"
    # JSON, but not a claim: the amount is not a number and the customer is missing
    bad = {"claim_id": claim_id, "policy_id": policy_id, "amount": "a lot", "documents": []}
    bad["description"] = "Fence blown over"
    return json.dumps(bad)


def generate_claims(n: int, seed: int = 42) -> list[dict[str, Any] | str]:
    """``n`` records: claims (dicts) with ``n // 6`` malformed raw strings among them."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    policies = max(3, n // 3)  # some policies get several claims (the agent remembers them)
    malformed = set(rng.sample(range(n), n // 6))
    records: list[dict[str, Any] | str] = []
    kinds = bad = 0
    for index in range(n):
        if index in malformed:
            records.append(_malformed(rng, index, bad % 3, policies))
            bad += 1
        else:
            records.append(_claim(rng, index, _PATTERN[kinds % len(_PATTERN)], policies))
            kinds += 1
    return records
