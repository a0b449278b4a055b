"""The units of work the agent operator and its event loop share."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from streaming_agents.memory import Memory
from streaming_agents.runtime.events import Envelope

__all__ = ["Completion", "KeyChain", "RunnerStats"]


@dataclass(frozen=True)
class Completion:
    """One processed event, ready to commit: new memory plus what to emit."""

    memory_json: str
    outputs: tuple[str, ...] = ()
    dead_letter: str | None = None
    audit: tuple[str, ...] = ()


@dataclass
class KeyChain:
    """In-memory mirror of one key's work; ``memory`` runs ahead of state."""

    key: str
    memory: Memory
    todo: deque[Envelope] = field(default_factory=deque)
    done: deque[Completion] = field(default_factory=deque)
    running: bool = False
    next_timer: int | None = None
    end_timer: int | None = None
    call_started: float | None = None

    @property
    def idle(self) -> bool:
        return not self.running and not self.todo


@dataclass
class RunnerStats:
    """Counters read (and copied into Flink metrics) by the operator thread."""

    llm_calls: int = 0
    tool_calls: int = 0
    tools_fenced: int = 0
    repairs: int = 0
    journal_hits: int = 0
    dead_lettered: int = 0
    latency_ms_total: float = 0.0
    parked: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
