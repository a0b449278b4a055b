"""The claim triage job: Kafka claims -> key_by policy -> triage agent -> Kafka decisions.

Input records are claims as JSON (:class:`Claim`), keyed by ``policy_id`` so
each policy's claim history is the agent's memory for that key (a second
claim on the same policy is judged with the first one in view).  For every
claim the agent emits one :class:`Decision` inside the runtime's output
envelope (``{"agent", "version", "key", "input", "output", "turn"}``) on the
decisions topic; records it cannot use (not JSON, not a claim, a reply that
does not validate) go to the dead-letter topic with the reason.  Both sinks
are exactly-once.

Flink workers cannot import the top-level ``jobs`` package, so this module
registers itself with cloudpickle to be shipped by value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import cloudpickle  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from streaming_agents import Agent, Journal, LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import ConfigError
from streaming_agents.memory import ConversationMemory, MemoryPolicy

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = [
    "SYSTEM_PROMPT",
    "VERSIONS",
    "VERSION_MEMORY",
    "Claim",
    "Decision",
    "Route",
    "agent_from_env",
    "build",
    "render_claim",
    "triage_agent",
]

Route = Literal["auto_approve", "human_review", "request_more_info"]

SYSTEM_PROMPT = """\
You triage insurance claims for a claims department. For each claim decide one route:

- "human_review": any fraud indicator. Fraud indicators include stolen items without a \
police report, requests for payment in cash, amounts far above what the description \
supports, vague or inconsistent descriptions, very recent policies, and several claims on \
the same policy in a short time (earlier claims on this policy are in the conversation).
- "request_more_info": no fraud indicator, but the claim is incomplete: required documents \
are missing (at least a photo or an invoice/estimate; a police report for theft), or the \
description does not say what happened, when and where.
- "auto_approve": complete, consistent, plausible and compliant with a standard home/motor \
policy (a covered event, reported by the policy holder, documents attached).

Give fraud_score between 0 (no indicator) and 1 (near certain fraud), and short reasons \
naming the indicators, compliance issues or missing items you relied on. Copy claim_id \
from the claim. Answer with JSON matching the schema only."""


VERSIONS = {
    "1": SYSTEM_PROMPT,
    "2": SYSTEM_PROMPT
    + "\n\nWhen this policy already has claims in the conversation, name the earlier claim "
    "ids in reasons.",
}
"""The agent's versions: the system prompt of each.  ``$STREAMING_AGENTS_AGENT_VERSION``
chooses the one ``run``/``submit`` build (default ``1``); ``promote``/``rollback`` switch
production between them through a savepoint (same memory schema, so memory carries over)."""


VERSION_MEMORY = {version: ConversationMemory for version in VERSIONS}
"""Each version's memory class: ``promote``/``rollback`` check before a switch that the new
version can read the memory the running one wrote (all versions share one schema here)."""


class Claim(BaseModel):
    """One input record: an insurance claim."""

    model_config = ConfigDict(extra="ignore")

    claim_id: str = Field(min_length=1)
    policy_id: str = Field(min_length=1)
    customer: str
    amount: float = Field(ge=0)
    description: str
    documents: list[str] = Field(default_factory=list)


class Decision(BaseModel):
    """The agent's output for one claim."""

    claim_id: str = Field(description="the claim_id of the claim being decided")
    route: Route = Field(description="where the claim goes next")
    fraud_score: float = Field(ge=0, le=1, description="0 = no fraud indicator, 1 = certain")
    reasons: list[str] = Field(description="short reasons for the route and the score")


def render_claim(claim: Claim) -> str:
    """The user message for a claim (the fake LLM's demo rules match on this text)."""
    documents = ", ".join(claim.documents) if claim.documents else "none"
    return (
        f"Claim {claim.claim_id} on policy {claim.policy_id}\n"
        f"Customer: {claim.customer}\n"
        f"Amount: {claim.amount:.2f}\n"
        f"Description: {claim.description}\n"
        f"Documents: {documents}"
    )


class _Step:
    """System prompt, this policy's earlier claims and decisions, then the claim."""

    def __init__(self, system_prompt: str) -> None:
        self.system_prompt = system_prompt

    def __call__(self, event: Any, memory: ConversationMemory) -> LLMRequest:
        claim = Claim.model_validate(event)  # not a claim: dead-lettered as "step failed"
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}]
        messages.extend(memory.as_messages())
        messages.append({"role": "user", "content": render_claim(claim)})
        return LLMRequest(messages=tuple(messages), response_schema=Decision.model_json_schema())


def _reduce(
    event: Any, memory: ConversationMemory, result: LLMResult
) -> tuple[ConversationMemory, list[Any]]:
    """Validate the reply as a Decision; the claim id comes from the claim, not the model."""
    claim = Claim.model_validate(event)
    decision = Decision.model_validate_json(result.content)
    decision = decision.model_copy(update={"claim_id": claim.claim_id})
    memory = memory.with_turn(render_claim(claim), decision.model_dump_json())
    return memory, [decision.model_dump(mode="json")]


def triage_agent(model: ModelSpec, version: str = "1") -> Agent[ConversationMemory]:
    """The triage agent (memory: the last 10 claims and decisions of the policy)."""
    if version not in VERSIONS:
        raise ConfigError(f"claims-triage has versions {', '.join(VERSIONS)}, not {version!r}")
    return Agent(
        name="claims-triage",
        version=version,
        model=model,
        system_prompt=VERSIONS[version],
        memory=ConversationMemory,
        policy=MemoryPolicy(max_turns=10),
        output_schema=Decision,
        step_fn=_Step(VERSIONS[version]),
        reduce_fn=_reduce,
    )


def agent_from_env() -> Agent[ConversationMemory]:
    """The agent as ``replay``/``shadow --agent jobs.claims_triage.job:agent_from_env`` load it.

    Model ``$STREAMING_AGENTS_MODEL`` (API base ``$STREAMING_AGENTS_API_BASE``, API key
    variable ``$STREAMING_AGENTS_API_KEY_ENV``, both optional), version
    ``$STREAMING_AGENTS_AGENT_VERSION`` (default ``1``).
    """
    from streaming_agents.versions import selected_version

    name = os.environ.get("STREAMING_AGENTS_MODEL")
    if not name:
        raise ConfigError("set STREAMING_AGENTS_MODEL to the litellm model of the agent")
    model = ModelSpec(
        model=name,
        api_base=os.environ.get("STREAMING_AGENTS_API_BASE") or None,
        api_key_env=os.environ.get("STREAMING_AGENTS_API_KEY_ENV") or None,
    )
    return triage_agent(model, selected_version(VERSIONS, "1"))


def build(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    in_topic: str,
    out_topic: str,
    dlq_topic: str,
    model: ModelSpec,
    *,
    bounded: bool = False,
    group_id: str = "claims-triage",
    journal: Journal | None = None,
    capacity: int = 100,
    properties: Mapping[str, str] | None = None,
    security: KafkaSecurity | None = None,
    version: str = "1",
) -> None:
    """Add the job to ``env``: claims -> key_by(policy_id) -> agent -> decisions / DLQ.

    ``version`` is the agent's (:data:`VERSIONS`); every version has the same
    operators and uids, so one restores another's savepoint.

    ``bounded`` stops at the input's end offsets when the job starts (demo,
    backfill); ``journal`` defaults to the runtime's journal.  The sinks'
    transactional ids are derived from the output topic, so two jobs writing
    the same topics on one cluster would fence each other.  Records without a
    usable ``policy_id`` are dead-lettered (reason ``no key``).
    """
    from streaming_agents.pipeline import AgentPipeline

    streams = (
        AgentPipeline.from_kafka(
            env,
            bootstrap,
            in_topic,
            group_id,
            bounded=bounded,
            properties=properties,
            security=security,
            name="claims",
        )
        .key_by("policy_id")
        .apply(triage_agent(model, version), capacity=capacity, journal=journal)
    )
    streams.to_kafka(
        bootstrap,
        outputs=out_topic,
        dead_letters=dlq_topic,
        transactional_id_prefix=f"claims-triage-{out_topic}",
        properties=properties,
        security=security,
    )
