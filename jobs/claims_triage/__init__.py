"""Insurance claim triage: an LLM agent that routes claims, keyed by policy.

``job`` holds the agent, its schemas and :func:`build` (the Flink job graph);
``sample_data`` generates deterministic sample claims.  See README.md.

Imports inside the package are relative, so it works both as
``jobs.claims_triage`` (from the repository root) and when loaded by path
under another name (the CLI does that: ``tests/jobs`` is a package called
``jobs`` too, which would shadow this folder on a test run's ``sys.path``).
"""

from __future__ import annotations

from .job import (
    SYSTEM_PROMPT,
    VERSION_MEMORY,
    Claim,
    Decision,
    Route,
    build,
    render_claim,
    triage_agent,
)
from .sample_data import generate_claims

__all__ = [
    "SYSTEM_PROMPT",
    "VERSION_MEMORY",
    "Claim",
    "Decision",
    "Route",
    "build",
    "generate_claims",
    "render_claim",
    "triage_agent",
]
