"""One exception hierarchy for the whole library.

Two branches, so callers can tell whose fault a failure is:

* :class:`UserError` -- the user's mistake (bad agent definition, bad config,
  bad SQL statement, bad replay range).  Fixing the code or the input fixes it;
  retrying never helps.
* :class:`RuntimeFailure` -- something outside the user's code failed (broker,
  cluster, LLM provider).  Retrying may help.

Every exception keeps its constructor arguments in ``args`` so it survives
pickling: PyFlink ships exceptions from the Python worker back to the JVM and
multiprocessing-based tooling pickles them too.
"""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "InfrastructureError",
    "LLMCallError",
    "RuntimeFailure",
    "StreamingAgentsError",
    "UnusableReply",
    "UserError",
]


class StreamingAgentsError(Exception):
    """Base class of every error raised by streaming_agents."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[StreamingAgentsError], tuple[str]]:
        return (type(self), (self.message,))


class UserError(StreamingAgentsError):
    """The user's mistake: a definition, config or input that can never work."""


class ConfigError(UserError):
    """A configuration value is missing or invalid."""


class RuntimeFailure(StreamingAgentsError):
    """A failure outside the user's code; retrying may help."""


class InfrastructureError(RuntimeFailure):
    """A process the library manages (broker, cluster, fake LLM) misbehaved."""


class LLMCallError(RuntimeFailure):
    """An LLM call failed after every retry and fallback."""


class UnusableReply(RuntimeFailure):
    """The LLM answered, but the reply cannot be used (e.g. schema violation).

    Events whose reply is unusable go to the dead-letter topic; the job goes on.
    """


class BudgetExceeded(RuntimeFailure):
    """An agent's token or cost budget for the current window is spent."""
