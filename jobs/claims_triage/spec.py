"""Registry entry of the claim triage job (``streaming-agents run|submit claims_triage``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from streaming_agents.registry import AgentDecl, JobContext, JobSpec, SampleRecord
from streaming_agents.versions import selected_version

from .job import VERSIONS, build
from .sample_data import generate_claims

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

__all__ = ["JOB"]


def _build(env: StreamExecutionEnvironment, ctx: JobContext) -> None:
    build(
        env,
        ctx.bootstrap,
        ctx.topic("claims"),
        ctx.topic("decisions"),
        ctx.topic("dlq"),
        ctx.model,
        bounded=ctx.bounded,
        group_id=ctx.group_id or "claims-triage",
        journal=ctx.journal,
        capacity=ctx.capacity,
        security=ctx.security,
        version=selected_version(VERSIONS, "1"),  # $STREAMING_AGENTS_AGENT_VERSION
    )


def _sample(n: int, seed: int) -> list[SampleRecord]:
    records = []
    for record in generate_claims(n, seed):
        if isinstance(record, dict):
            records.append(SampleRecord("claims", str(record["policy_id"]), json.dumps(record)))
        else:
            records.append(SampleRecord("claims", None, record))
    return records


def _fake_rules() -> list[dict[str, object]]:
    from streaming_agents.cli.demo import fake_rules

    return list(fake_rules())


JOB = JobSpec(
    name="claims-triage",
    description="route insurance claims: auto-approve, human review (fraud), request more info",
    topics={"claims": "claims", "decisions": "claims-decisions", "dlq": "claims-dlq"},
    agents=(
        AgentDecl(
            name="claims-triage",
            version="1",
            inputs=("claims",),
            outputs=("decisions", "dlq"),
            description="routes each claim; memory: the policy's recent claims",
        ),
    ),
    build=_build,
    sample=_sample,
    fake_rules=_fake_rules,
)
