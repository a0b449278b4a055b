"""Which version of a job's agent to build: ``$STREAMING_AGENTS_AGENT_VERSION``.

A job that ships several versions of its agent (a new prompt, a new model, a
new memory schema) lists them and asks :func:`selected_version` which one to
build.  ``streaming-agents run|submit`` build the version named by the
environment variable (its default when unset); ``promote``/``rollback`` set
it for the job they start.  The choice is made where the job graph is built
(the client, or ``flink run``'s Python driver): the workers receive the built
agent and never read the variable.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from streaming_agents.errors import ConfigError

__all__ = ["AGENT_VERSION_ENV", "selected_version"]

AGENT_VERSION_ENV = "STREAMING_AGENTS_AGENT_VERSION"


def selected_version(known: Collection[str], default: str) -> str:
    """``$STREAMING_AGENTS_AGENT_VERSION`` if set (one of ``known``), else ``default``."""
    chosen = os.environ.get(AGENT_VERSION_ENV, "").strip() or default
    if chosen not in known:
        raise ConfigError(
            f"{AGENT_VERSION_ENV}={chosen!r}: this job's agent versions are "
            f"{', '.join(sorted(known))}"
        )
    return chosen
