"""streaming_agents: Apache Flink as the runtime for always-on LLM agents.

The public API is what ``__all__`` lists (pinned by tests/test_exported_members.py).
Names that need PyFlink (``run_agent``, ``dead_letters``, ``audit_log``) are imported on
first use, so ``import streaming_agents`` stays cheap and starts no JVM.
"""

from __future__ import annotations

from typing import Any

from streaming_agents.agent import (
    Agent,
    AgentOutput,
    CircuitBreaker,
    LLMRequest,
    LLMResult,
    ModelSpec,
    Usage,
)
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
from streaming_agents.llm.budget import Budget
from streaming_agents.llm.journal import Journal, NullJournal, SqliteJournal
from streaming_agents.memory import ConversationMemory, Memory, MemoryPolicy, Turn
from streaming_agents.tools import Tool, tool

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentOutput",
    "Budget",
    "BudgetExceeded",
    "CircuitBreaker",
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
    "Tool",
    "Turn",
    "UnusableReply",
    "Usage",
    "UserError",
    "__version__",
    "audit_log",
    "dead_letters",
    "run_agent",
    "tool",
]

_LAZY = {"run_agent", "dead_letters", "audit_log"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from streaming_agents.runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'streaming_agents' has no attribute {name!r}")
