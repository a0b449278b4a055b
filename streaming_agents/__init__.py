"""streaming_agents: Apache Flink as the runtime for always-on LLM agents."""

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

__version__ = "0.1.0"

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "InfrastructureError",
    "LLMCallError",
    "RuntimeFailure",
    "StreamingAgentsError",
    "UnusableReply",
    "UserError",
    "__version__",
]
