"""Registry entry of the catalog normalisation job (``streaming-agents run|submit ...``)."""

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
        ctx.topic("products"),
        ctx.topic("normalised"),
        ctx.topic("dlq"),
        ctx.model,
        bounded=ctx.bounded,
        group_id=ctx.group_id or AGENT_NAME,
        journal=ctx.journal,
        capacity=ctx.capacity,
        security=ctx.security,
    )


def _sample(n: int, seed: int) -> list[SampleRecord]:
    return [SampleRecord("products", key, value) for key, value in generate(n, seed)]


JOB = JobSpec(
    name="catalog-normalisation",
    description="standardise partner product data: units, attributes, categories; flag issues",
    topics={
        "products": "partner-products",
        "normalised": "catalog-normalised",
        "dlq": "catalog-dlq",
    },
    agents=(
        AgentDecl(
            name=AGENT_NAME,
            version="1",
            inputs=("products",),
            outputs=("normalised", "dlq"),
            description="one per partner; memory: category mappings made, issue counts",
        ),
    ),
    build=_build,
    sample=_sample,
    fake_rules=fake_rules,
)
