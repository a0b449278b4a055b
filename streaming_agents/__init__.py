"""streaming_agents: Apache Flink as the runtime for always-on LLM agents.

The public API is what ``__all__`` lists (pinned by tests/test_exported_members.py).
Names that need PyFlink (``run_agent``, ``dead_letters``) are imported on
first use, so ``import streaming_agents`` stays cheap and starts no JVM.
"""

from __future__ import annotations

from typing import Any

from streaming_agents.agent import Agent, AgentOutput, LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import (
    BudgetExceeded,
    ConfigError,
    InfrastructureError,
    LLMCallError,
    RuntimeFailure,
    StreamingAgentsError,
    UnusableReply,
    UserError,
)
from streaming_agents.llm.journal import Journal, NullJournal, SqliteJournal
from streaming_agents.memory import ConversationMemory, Memory, MemoryPolicy, Turn

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentOutput",
    "BudgetExceeded",
    "ConfigError",
    "ConversationMemory",
    "InfrastructureError",
    "Journal",
    "LLMCallError",
    "LLMRequest",
    "LLMResult",
    "Memory",
    "MemoryPolicy",
    "ModelSpec",
    "NullJournal",
    "RuntimeFailure",
    "SqliteJournal",
    "StreamingAgentsError",
    "Turn",
    "UnusableReply",
    "UserError",
    "__version__",
    "dead_letters",
    "run_agent",
]

_LAZY = {"run_agent", "dead_letters"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from streaming_agents.runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'streaming_agents' has no attribute {name!r}")
