"""Registry entry of the claims compliance job (``streaming-agents run|submit claims_compliance``).

Its input role ``decisions`` defaults to ``claims-decisions``, the triage job's
output topic: that shared topic is the link between the two agents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streaming_agents.registry import AgentDecl, JobContext, JobSpec, SampleRecord

from .job import AGENT_NAME, build
from .sample_data import fake_rules, generate

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

__all__ = ["JOB"]


def _build(env: StreamExecutionEnvironment, ctx: JobContext) -> None:
    build(
        env,
        ctx.bootstrap,
        ctx.topic("decisions"),
        ctx.topic("reviews"),
        ctx.topic("dlq"),
        ctx.model,
        bounded=ctx.bounded,
        group_id=ctx.group_id or "claims-compliance",
        journal=ctx.journal,
        capacity=ctx.capacity,
        security=ctx.security,
    )


def _sample(n: int, seed: int) -> list[SampleRecord]:
    return [SampleRecord("decisions", key, value) for key, value in generate(n, seed)]


JOB = JobSpec(
    name="claims-compliance",
    description="compliance review of the claims triage flagged for human review",
    topics={
        "decisions": "claims-decisions",
        "reviews": "claims-compliance-reviews",
        "dlq": "claims-compliance-dlq",
    },
    agents=(
        AgentDecl(
            name=AGENT_NAME,
            version="1",
            inputs=("decisions",),
            outputs=("reviews", "dlq"),
            description="reviews human_review claims; memory: the policy's earlier reviews",
        ),
    ),
    build=_build,
    sample=_sample,
    fake_rules=fake_rules,
)
