"""Registry entry of the supply-chain job (``streaming-agents run|submit supply_chain``)."""

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
        dict(ctx.topics),
        ctx.model,
        bounded=ctx.bounded,
        group_id=ctx.group_id or "supply-chain",
        journal=ctx.journal,
        capacity=ctx.capacity,
        security=ctx.security,
    )


def _sample(n: int, seed: int) -> list[SampleRecord]:
    return [SampleRecord(role, key, value) for role, key, value in generate(n, seed)]


JOB = JobSpec(
    name="supply-chain",
    description="proactive disruption handling: shipments, stock and weather per region",
    topics={
        "positions": "shipment-positions",
        "stock": "warehouse-stock",
        "weather": "weather-alerts",
        "actions": "supply-chain-actions",
        "notifications": "supply-chain-notifications",
        "dlq": "supply-chain-dlq",
    },
    agents=(
        AgentDecl(
            name=AGENT_NAME,
            version="1",
            inputs=("positions", "stock", "weather"),
            outputs=("actions", "notifications", "dlq"),
            description="one per region; memory: shipments, stock, weather alerts, actions",
        ),
    ),
    build=_build,
    sample=_sample,
    fake_rules=fake_rules,
)
