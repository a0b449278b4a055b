"""Claims compliance: reviews the claims the triage agent flagged, reading its output topic.

``job`` holds the agent, its schemas and :func:`build`; ``sample_data`` generates
deterministic triage outputs and the fake-LLM rules that answer them; ``spec``
registers the job (``streaming-agents agents|run|submit``).  See README.md.

Imports inside the package are relative, so it works both as
``jobs.claims_compliance`` and when loaded by path under another name.
"""

from __future__ import annotations

from .job import (
    AGENT_NAME,
    REVIEWED_ROUTE,
    SYSTEM_PROMPT,
    Case,
    ComplianceCheck,
    ComplianceReview,
    build,
    case_of,
    compliance_agent,
    needs_review,
    render_case,
)
from .sample_data import fake_rules, generate

__all__ = [
    "AGENT_NAME",
    "REVIEWED_ROUTE",
    "SYSTEM_PROMPT",
    "Case",
    "ComplianceCheck",
    "ComplianceReview",
    "build",
    "case_of",
    "compliance_agent",
    "fake_rules",
    "generate",
    "needs_review",
    "render_case",
]
