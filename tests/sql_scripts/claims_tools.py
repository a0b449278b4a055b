"""The Python tool of tests/sql_scripts/claims_review.sql (CREATE FUNCTION ... LANGUAGE PYTHON)."""

from __future__ import annotations

_POLICIES = {"P-7": {"policy_id": "P-7", "status": "active", "coverage": 250000}}


def policy_lookup(policy_id: str) -> dict[str, object]:
    """Look up the insurance policy of a claim by its policy id."""
    return _POLICIES.get(policy_id.strip().upper(), {"policy_id": policy_id, "status": "unknown"})
