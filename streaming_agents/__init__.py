"""streaming_agents: Apache Flink as the runtime for always-on LLM agents.

The public API is exactly what ``__all__`` lists (pinned by tests/test_exported_members.py).
Names that need PyFlink (``run_agent``, ``dead_letters``, ``audit_log``) and the jar helpers
(``add_connector_jars``, ``connector_jar_uris``) are imported on first use, so
``import streaming_agents`` stays cheap and starts no JVM; type checkers see their real
signatures through the ``TYPE_CHECKING`` imports below (the package ships ``py.typed``).
"""

import typing as _typing

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
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.runtime.events import MALFORMED_KEY, Limits
from streaming_agents.runtime.keys import json_key
from streaming_agents.tools import Tool, tool

if _typing.TYPE_CHECKING:
    from streaming_agents.jars import add_connector_jars, connector_jar_uris
    from streaming_agents.runtime.api import audit_log, dead_letters, run_agent

__version__ = "0.1.0"

__all__ = [
    "MALFORMED_KEY",
    "Agent",
    "AgentOutput",
    "AgentPipeline",
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
    "Limits",
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
    "add_connector_jars",
    "audit_log",
    "connector_jar_uris",
    "dead_letters",
    "json_key",
    "run_agent",
    "tool",
]

_LAZY = {
    "run_agent": "streaming_agents.runtime.api",
    "dead_letters": "streaming_agents.runtime.api",
    "audit_log": "streaming_agents.runtime.api",
    "add_connector_jars": "streaming_agents.jars",
    "connector_jar_uris": "streaming_agents.jars",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streaming_agents' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
