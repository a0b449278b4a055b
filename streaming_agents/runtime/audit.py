"""The audit trail of one event: every LLM call, tool call and the decision.

Audit records are emitted on the operator's ``audit`` side output in the
same callback that commits the event, so with an exactly-once sink each
committed event's trail is written exactly once.  Work redone after a failure
shows up as ``journal`` outcomes (answered from the record, not paid again).
The trace id is derived from the agent, the key and the event's identity, so
a replay of the same input carries the same trace id.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from streaming_agents.agent import LLMResult, Usage

__all__ = ["EventTrace", "trace_id_for"]


def trace_id_for(agent: str, key: str, event: Any, source: dict[str, Any] | None) -> str:
    identity = source if source else event
    digest = hashlib.sha256(
        json.dumps([agent, key, identity], sort_keys=True, default=str).encode()
    ).hexdigest()
    return digest[:32]


@dataclass
class EventTrace:
    """Usage and audit entries gathered while one event is processed."""

    agent: str
    version: str
    key: str
    trace_id: str
    source: dict[str, Any] | None
    shadow: bool = False
    usage: Usage = field(default_factory=Usage)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def _add(self, kind: str, **fields: Any) -> None:
        self.entries.append(
            {
                "kind": kind,
                "agent": self.agent,
                "version": self.version,
                "key": self.key,
                "trace_id": self.trace_id,
                "source": self.source,
                "shadow": self.shadow,
                "ts": time.time(),
                **fields,
            }
        )

    def llm_call(self, digest: str, result: LLMResult, outcome: str) -> None:
        self.usage.add(result)
        self._add(
            "llm_call",
            digest=digest,
            model=result.model,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            outcome=outcome,
        )

    def llm_failure(self, digest: str, error: str) -> None:
        self._add("llm_call", digest=digest, outcome="failed", error=error)

    def tool_call(self, name: str, side_effecting: bool, outcome: str) -> None:
        self._add("tool_call", tool=name, side_effecting=side_effecting, outcome=outcome)

    def decision(self, outcome: str, reason: str = "", turn: int | None = None) -> None:
        self._add("decision", outcome=outcome, reason=reason, turn=turn)

    def lines(self) -> tuple[str, ...]:
        return tuple(json.dumps(e, default=str) for e in self.entries)
