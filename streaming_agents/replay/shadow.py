"""Live shadow: a candidate on the live topic beside production, fenced and marked.

An unbounded source in its own consumer group from ``latest`` (or a timestamp,
or a production savepoint's offsets), side effects fenced, every output marked
``"shadow": true`` and written exactly once to the shadow topic; returns a
handle to stop it (outputs since its last checkpoint are then dropped).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from streaming_agents.agent import Agent
from streaming_agents.errors import ConfigError
from streaming_agents.journal.factory import open_reader, request_log
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.replay.divergence import FencedCall, fenced_calls
from streaming_agents.replay.memory_start import MemoryStart, savepoint_offsets
from streaming_agents.replay.runs import (
    fenced_agent_stream,
    make_run_dir,
    new_run_id,
    prepare_targets,
    run_env,
    run_journal,
)
from streaming_agents.replay.topics import refuse_unsafe_names, topic_end_offsets

if TYPE_CHECKING:
    from streaming_agents.connectors.security import KafkaSecurity

__all__ = ["ShadowRun", "shadow"]


@dataclass
class ShadowRun:
    """A live shadow job; :meth:`stop` cancels it."""

    run_id: str
    shadow_topic: str
    group_id: str
    journal_path: str
    job_client: Any
    memory_start: MemoryStart = field(default_factory=MemoryStart)

    @property
    def job_id(self) -> str:
        return str(self.job_client.get_job_id())

    def status(self) -> str:
        return str(self.job_client.get_job_status().result())

    def stop(self) -> None:
        """Cancel the job; outputs since its last checkpoint (an open transaction) are dropped."""
        try:
            self.job_client.cancel().result()
        except Exception as exc:  # finished or failed already: nothing to stop
            if "not found" not in str(exc).lower() and "terminal" not in str(exc).lower():
                raise

    def fenced_calls(self, agent: str) -> list[FencedCall]:
        store = open_reader(f"sqlite://{self.journal_path}", agent=agent)
        try:
            log = request_log(store)
            return [] if log is None else fenced_calls(log, agent, 0)
        finally:
            store.close()


def shadow(
    agent: Agent[Any],
    *,
    bootstrap: str,
    topic: str,
    shadow_topic: str,
    key_field: str = "key",
    starting: Literal["latest", "earliest"] | int = "latest",
    group_id: str | None = None,
    production_topic: str | None = None,
    capacity: int = 100,
    run_dir: str | Path | None = None,
    checkpoint_interval_ms: int = 1000,
    audit_topic: str | None = None,
    security: KafkaSecurity | None = None,
    memory_from: str | Path | None = None,
) -> ShadowRun:
    """Start ``agent`` on the live ``topic`` beside production; outputs go to ``shadow_topic``.

    ``starting`` is ``latest`` (only what arrives from now on), ``earliest``
    or a timestamp in epoch milliseconds.  The job uses its own consumer group
    (``group_id``, default ``sa-shadow-<agent>-<version>``) and a fresh
    journal, fences side effects and marks every output ``"shadow": true``;
    ``audit_topic`` (optional) receives its audit records; ``security`` is the
    Kafka client-security setting of every client (readers, source, sinks).
    ``memory_from`` (a production savepoint) starts each key with production's
    memory, as in :func:`replay`; ``starting="latest"`` (the default) then means
    the savepoint's offsets of ``topic``, so memory and input line up.
    """
    from streaming_agents.connectors.kafka import exactly_once_sink

    for target in (shadow_topic, audit_topic):
        if target is not None:
            refuse_unsafe_names(target, source_topic=topic, production_topic=production_topic)
    end = topic_end_offsets(bootstrap, topic, security=security)  # MissingTopic when absent
    if isinstance(starting, int) and starting > int(time.time() * 1000) + 60_000:
        raise ConfigError(f"starting={starting} is more than a minute in the future")
    prepare_targets(
        bootstrap,
        [shadow_topic, audit_topic],
        source_topic=topic,
        production_topic=production_topic,
        partitions=len(end),
        security=security,
    )
    run_id = new_run_id(agent)
    run_path = make_run_dir(run_dir, run_id)
    group = group_id or f"sa-shadow-{agent.name}-{agent.version}"
    journal = run_journal(run_path, run_id, None)
    memory, start_at = _shadow_memory(agent, topic, starting, memory_from)
    env = run_env("streaming", checkpoint_interval_ms, memory.flink_config(run_id))
    pipeline = AgentPipeline.from_kafka(
        env,
        bootstrap,
        topic,
        group,
        starting=start_at,
        security=security,
        name=f"shadow:{topic}",
    )
    stream = fenced_agent_stream(
        pipeline,
        agent,
        journal,
        key_field=key_field,
        capacity=capacity,
        run_id=run_id,
        topic=topic,
        bootstrap=bootstrap,
        audit_topic=audit_topic,
        security=security,
        uid=memory.agent_uid,
        memory_start=memory.to_dict(),
    )
    stream.sink_to(
        exactly_once_sink(bootstrap, shadow_topic, f"sa-shadow-{run_id}", security=security)
    )
    client = env.execute_async(f"shadow {agent.name}@{agent.version} {run_id}")
    journal_path = str(run_path / "journal.sqlite")
    return ShadowRun(run_id, shadow_topic, group, journal_path, client, memory)


def _shadow_memory(
    agent: Agent[Any],
    topic: str,
    starting: Literal["latest", "earliest"] | int,
    memory_from: str | Path | None,
) -> tuple[MemoryStart, str | int | dict[int, int]]:
    """How a shadow's memory starts and where its source starts reading."""
    start_at = starting if isinstance(starting, int) else f"{starting}-offset"
    if memory_from is None:
        return MemoryStart(), start_at
    memory = MemoryStart.from_savepoint(memory_from, agent.name)
    if starting != "latest":
        return memory, start_at
    assert memory.savepoint is not None
    offsets = savepoint_offsets(memory.savepoint, topic)
    return memory.with_offsets(offsets), offsets
