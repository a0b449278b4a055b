"""``run_agent``: apply an Agent to a PyFlink KeyedStream."""

from __future__ import annotations

from typing import Any

from pyflink.common import Types
from pyflink.datastream import DataStream, KeyedStream

from streaming_agents.agent import Agent
from streaming_agents.errors import ConfigError
from streaming_agents.journal.factory import JournalSetting, JournalSpec, open_journal
from streaming_agents.llm.journal import Journal
from streaming_agents.runtime.events import Limits
from streaming_agents.runtime.execution import use_thread_mode
from streaming_agents.runtime.operator import AUDIT_TAG, DEAD_LETTER_TAG, AgentFunction

__all__ = ["audit_log", "dead_letters", "default_journal", "run_agent"]


def default_journal(agent: Agent[Any], job: str | None = None) -> Journal:
    """The journal this process's settings choose for ``agent`` (scoped to ``job``).

    ``$STREAMING_AGENTS_JOURNAL`` (a URI), else SQLite files in
    ``$STREAMING_AGENTS_JOURNAL_DIR``, else in the user's state directory
    (:mod:`streaming_agents.journal.factory`).  ``run_agent`` does not call
    this on the client: the operator resolves its journal where it runs.
    """
    return open_journal(
        None, agent=agent.name, version=agent.version, job=job or f"agent-{agent.name}"
    )


def _journal_setting(journal: JournalSetting, keyed: KeyedStream, job: str) -> JournalSetting:
    """An object as given; a URI (or nothing) as a spec the workers resolve."""
    if journal is not None and not isinstance(journal, str):
        return journal
    j_env = keyed._j_data_stream.getExecutionEnvironment()
    name = j_env.getConfiguration().toMap().get("pipeline.name")
    interval_ms = int(j_env.getCheckpointConfig().getCheckpointInterval())
    # Journal entries a restore may need: a checkpoint interval, its duration
    # and events in progress; see streaming_agents.journal.kafka.
    lookback_s = max(300.0, 3 * interval_ms / 1000) if interval_ms > 0 else None
    return JournalSpec(uri=journal, job=str(name) if name else job, lookback_s=lookback_s)


def run_agent(
    keyed: KeyedStream,
    agent: Agent[Any],
    *,
    capacity: int = 100,
    journal: JournalSetting = None,
    uid: str | None = None,
    fence_side_effects: bool = False,
    limits: Limits | None = None,
    llm_processes: int = 0,
) -> DataStream:
    """Run ``agent`` on every key of ``keyed``; returns a stream of output JSON lines.

    Each key's memory is keyed Flink state; events of a key are handled one
    at a time in arrival order while up to ``capacity`` LLM calls per subtask
    are in flight across keys.  The operator's ``uid`` (default
    ``agent-<name>``) identifies its state in checkpoints and savepoints:
    keep it stable across versions that must read the same memory.
    Events the agent cannot use are on :func:`dead_letters` of the result.
    ``journal``: a URI (``sqlite:///path``, ``kafka://bootstrap/topic``,
    ``none``; see :mod:`streaming_agents.journal.factory`) resolved on each
    worker, or a journal object; by default each worker's
    ``$STREAMING_AGENTS_JOURNAL`` decides.  Entries are scoped to the job
    (its ``pipeline.name``, else ``uid``), the agent and its version.
    ``fence_side_effects`` (replays, dark launches) records calls to tools
    marked side-effecting instead of running them.  ``limits``
    (:class:`~streaming_agents.runtime.events.Limits`) bounds event size and
    JSON depth and caps every output and dead-letter record below the sink's
    maximum request size; records outside them, malformed ones and those
    keyed :data:`~streaming_agents.runtime.events.MALFORMED_KEY` are
    dead-lettered with their reason.  Feed the operator
    :func:`streaming_agents.connectors.kafka_records.kafka_records` (or use
    :mod:`streaming_agents.pipeline`) to have dead letters carry their
    source topic, partition and offset.
    ``llm_processes > 0`` runs litellm's calls in that many worker processes
    per subtask (:mod:`streaming_agents.llm.call_pool`): litellm's CPU per call
    then no longer shares the operator's interpreter lock, which caps a
    subtask at one core's worth of calls (see docs/benchmarks.md).
    """
    if not isinstance(keyed, KeyedStream):
        raise ConfigError("run_agent needs a KeyedStream: call .key_by(...) first")
    if capacity < 1:
        raise ConfigError(f"capacity must be at least 1, got {capacity}")
    if llm_processes < 0:
        raise ConfigError(f"llm_processes must be 0 (in process) or more, got {llm_processes}")
    function = AgentFunction(
        agent,
        _journal_setting(journal, keyed, uid or f"agent-{agent.name}"),
        capacity=capacity,
        fence_side_effects=fence_side_effects,
        limits=limits,
        llm_processes=llm_processes,
    )
    op_uid = uid or f"agent-{agent.name}"
    use_thread_mode(keyed)
    stream = (
        keyed.process(function, output_type=Types.STRING())
        .name(f"agent:{agent.name}@{agent.version}")
        .uid(op_uid)
    )
    # Declaring the side output registers its tag with the operator; without it
    # PyFlink would emit dead-letter tuples on the main output.
    stream.get_side_output(DEAD_LETTER_TAG)
    stream.get_side_output(AUDIT_TAG)
    return stream


def dead_letters(agent_stream: DataStream) -> DataStream:
    """The dead-letter records (JSON with the reason) of a ``run_agent`` result."""
    return agent_stream.get_side_output(DEAD_LETTER_TAG)


def audit_log(agent_stream: DataStream) -> DataStream:
    """The audit records (JSON: LLM calls, tool calls, decisions) of a ``run_agent`` result.

    Write them with :func:`streaming_agents.connectors.audit.audit_sink` to get
    the trace id in Kafka headers.
    """
    return agent_stream.get_side_output(AUDIT_TAG)
