"""Claims compliance: the second agent of the claims chain, fed by the triage agent's topic.

The triage job (``jobs/claims_triage``) writes one decision per claim to
``claims-decisions``.  This job reads that topic, keeps the decisions routed to
``human_review`` (the others need no compliance review and are skipped), keys
them by policy and asks a compliance agent for a :class:`ComplianceReview`:
refer to the special investigations unit, ask for a police report, approve with
conditions or deny, with the regulatory checks it applied.  Its memory per
policy holds the earlier reviews of that policy.  One review per flagged claim
goes to the reviews topic, unusable records to the dead-letter topic, both
exactly-once.

The agents are connected only through the topic: either side can be
redeployed, scaled or replayed on its own, and the triage output stays the
audit record of why a claim reached compliance.

Flink workers cannot import the top-level ``jobs`` package, so this module
registers itself with cloudpickle to be shipped by value.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import cloudpickle  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from streaming_agents import Agent, Journal, LLMRequest, LLMResult, ModelSpec
from streaming_agents.memory import ConversationMemory, MemoryPolicy

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

cloudpickle.register_pickle_by_value(sys.modules[__name__])

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
    "needs_review",
    "render_case",
]

AGENT_NAME = "claims-compliance"
REVIEWED_ROUTE = "human_review"

SYSTEM_PROMPT = """\
You are a claims compliance officer. Each case is a claim the triage agent flagged for \
human review, with its fraud score and reasons. Earlier reviews of the same policy are in \
the conversation. Decide the verdict:

- "refer_to_siu": refer to the special investigations unit: a request for payment in cash \
(anti-money-laundering rules), a fraud score of 0.9 or more, or repeated suspicious claims \
on the policy.
- "request_police_report": a theft without a police report attached (required before any \
payment for theft).
- "approve_with_conditions": the documents required by regulation are present; list the \
conditions (e.g. proof of ownership, deductible).
- "deny": the claim is not covered by the policy.

List the checks you applied (rule, passed, note), the escalation queue and a short notice \
for the customer. Answer with JSON matching the schema only."""

Verdict = Literal["refer_to_siu", "request_police_report", "approve_with_conditions", "deny"]


class Case(BaseModel):
    """A flagged claim as the compliance agent sees it (built from a triage output)."""

    model_config = ConfigDict(extra="ignore")

    claim_id: str = Field(min_length=1)
    policy_id: str = Field(min_length=1)
    customer: str = ""
    amount: float = Field(ge=0)
    description: str
    documents: list[str] = Field(default_factory=list)
    route: str
    fraud_score: float = Field(ge=0, le=1)
    triage_reasons: list[str] = Field(default_factory=list)
    triage_agent: str = ""
    triage_version: str = ""
    triage_trace_id: str = ""


class ComplianceCheck(BaseModel):
    rule: str
    passed: bool
    note: str = ""


class ComplianceReview(BaseModel):
    """The agent's output for one flagged claim."""

    claim_id: str = Field(description="the claim_id of the case")
    verdict: Verdict
    checks: list[ComplianceCheck]
    escalation: Literal["siu", "senior_adjuster", "none"]
    customer_notice: str


def case_of(envelope: Any) -> Case:
    """The case in a triage output envelope (``{"input": claim, "output": decision, ...}``)."""
    if not isinstance(envelope, dict):
        raise ValueError("a triage output must be a JSON object")
    claim, decision = envelope.get("input"), envelope.get("output")
    if not isinstance(claim, dict) or not isinstance(decision, dict):
        raise ValueError("a triage output needs 'input' (the claim) and 'output' (the decision)")
    return Case.model_validate(
        {
            **claim,
            "route": decision.get("route"),
            "fraud_score": decision.get("fraud_score"),
            "triage_reasons": decision.get("reasons") or [],
            "triage_agent": envelope.get("agent", ""),
            "triage_version": envelope.get("version", ""),
            "triage_trace_id": envelope.get("trace_id", ""),
        }
    )


def render_case(case: Case) -> str:
    """The user message for a case (the fake LLM's rules match on its lines)."""
    documents = ", ".join(case.documents) if case.documents else "none"
    return (
        f"Compliance review of claim {case.claim_id} on policy {case.policy_id}\n"
        f"Flagged by: {case.triage_agent or 'triage'} v{case.triage_version or '?'}\n"
        f"Customer: {case.customer}\n"
        f"Amount: {case.amount:.2f}\n"
        f"Description: {case.description}\n"
        f"Documents: {documents}\n"
        f"Fraud score: {case.fraud_score:.2f}\n"
        f"Triage reasons: {'; '.join(case.triage_reasons) or 'none'}"
    )


def _step(event: Any, memory: ConversationMemory) -> LLMRequest:
    case = case_of(event)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    messages.extend(memory.as_messages())
    messages.append({"role": "user", "content": render_case(case)})
    return LLMRequest(
        messages=tuple(messages), response_schema=ComplianceReview.model_json_schema()
    )


def _reduce(
    event: Any, memory: ConversationMemory, result: LLMResult
) -> tuple[ConversationMemory, list[Any]]:
    case = case_of(event)
    review = ComplianceReview.model_validate_json(result.content)
    review = review.model_copy(update={"claim_id": case.claim_id})
    memory = memory.with_turn(render_case(case), review.model_dump_json())
    output = {
        **review.model_dump(mode="json"),
        "policy_id": case.policy_id,
        "amount": case.amount,
        "triage": {
            "agent": case.triage_agent,
            "version": case.triage_version,
            "route": case.route,
            "fraud_score": case.fraud_score,
            "trace_id": case.triage_trace_id,
        },
    }
    return memory, [output]


def compliance_agent(model: ModelSpec) -> Agent[ConversationMemory]:
    """The compliance agent (memory: the policy's last 10 reviews)."""
    return Agent(
        name=AGENT_NAME,
        version="1",
        model=model,
        system_prompt=SYSTEM_PROMPT,
        memory=ConversationMemory,
        policy=MemoryPolicy(max_turns=10),
        output_schema=ComplianceReview,
        step_fn=_step,
        reduce_fn=_reduce,
    )


def needs_review(decision: dict[str, Any]) -> bool:
    """Keep triage outputs routed to human review, and anything not shaped like one.

    What is not a triage output is kept so the agent dead-letters it with its
    reason (``step failed``) instead of it vanishing in the filter.
    """
    output = decision.get("output")
    if not isinstance(output, dict):
        return True
    return bool(output.get("route") == REVIEWED_ROUTE)


def build(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    decisions_topic: str,
    reviews_topic: str,
    dlq_topic: str,
    model: ModelSpec,
    *,
    bounded: bool = False,
    group_id: str = "claims-compliance",
    journal: Journal | None = None,
    capacity: int = 100,
    properties: Mapping[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> None:
    """Add the job to ``env``: triage decisions -> human_review only -> agent -> reviews / DLQ."""
    from streaming_agents.pipeline import AgentPipeline

    streams = (
        AgentPipeline.from_kafka(
            env,
            bootstrap,
            decisions_topic,
            group_id,
            bounded=bounded,
            properties=properties,
            security=security,
            name="decisions",
        )
        .where(needs_review)
        .key_by("input.policy_id")
        .apply(compliance_agent(model), capacity=capacity, journal=journal)
    )
    streams.to_kafka(
        bootstrap,
        outputs=reviews_topic,
        dead_letters=dlq_topic,
        transactional_id_prefix=f"claims-compliance-{reviews_topic}",
        properties=properties,
        security=security,
    )
