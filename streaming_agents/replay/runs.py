"""What a replay and a live shadow share: run ids and folders, the run's journal,
the Flink environment, the fenced agent stream and its shadow marks, target topics.

A run's outputs and dead letters are marked ``"shadow": true`` with the run id
and how the run's memory started (:class:`ShadowMark`), so a report made later
from the shadow topic alone (``compare``) can say it; they are written through
the exactly-once sink by the caller;
side-effecting tools are fenced (never run); the run writes only its own journal
(a SQLite file in its run folder), reading production's, if given, read-only.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from streaming_agents.agent import Agent
from streaming_agents.journal.factory import JournalSpec
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.replay.topics import check_shadow_target, ensure_topic

if TYPE_CHECKING:
    from pyflink.datastream import DataStream, StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

__all__ = [
    "Mode",
    "ShadowMark",
    "fenced_agent_stream",
    "make_run_dir",
    "new_run_id",
    "prepare_targets",
    "run_env",
    "run_journal",
]

Mode = Literal["streaming", "batch"]


class ShadowMark:
    """Map function: mark an output (or dead letter) as a shadow run's.

    The mark is ``"shadow": true`` and ``"replay": {"run", "topic",
    "memory_start"}``; ``memory_start`` is the run's
    :meth:`~streaming_agents.replay.memory_start.MemoryStart.to_dict` (kind,
    savepoint path, agent uid, offsets -- no secret), left out when not given.
    """

    def __init__(
        self,
        run_id: str,
        source_topic: str,
        dead_letter: bool = False,
        memory_start: dict[str, Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.source_topic = source_topic
        self.dead_letter = dead_letter
        self.memory_start = None if memory_start is None else dict(memory_start)

    def __call__(self, line: str) -> str:
        try:
            doc = json.loads(line)
        except ValueError:
            doc = {"raw": line}
        if not isinstance(doc, dict):
            doc = {"raw": doc}
        doc["shadow"] = True
        doc["replay"] = {"run": self.run_id, "topic": self.source_topic}
        if self.memory_start is not None:
            doc["replay"]["memory_start"] = self.memory_start
        if self.dead_letter:
            doc["dead_letter"] = True
        return json.dumps(doc)


def make_run_dir(folder: str | Path | None, run_id: str) -> Path:
    """The run's own folder, created: under ``folder``, else
    ``$STREAMING_AGENTS_REPLAY_DIR``, else the temp dir."""
    root = folder or os.environ.get("STREAMING_AGENTS_REPLAY_DIR")
    base = Path(root) if root else Path(tempfile.gettempdir()) / "streaming_agents" / "replay"
    path = base / run_id
    path.mkdir(parents=True, exist_ok=False)
    return path


def new_run_id(agent: Agent[Any]) -> str:
    safe = "".join(
        ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{agent.name}-{agent.version}"
    )
    return f"{safe}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def run_journal(run_path: Path, run_id: str, production: str | None) -> JournalSpec:
    """The operator's journal: the run's own file, over ``production`` read-only if given."""
    own = f"sqlite://{(run_path / 'journal.sqlite').resolve()}"
    return JournalSpec(uri=own, job=run_id, read_from=production)


def run_env(
    mode: Mode, checkpoint_interval_ms: int | None, restore: dict[str, str] | None = None
) -> StreamExecutionEnvironment:
    from pyflink.datastream import RuntimeExecutionMode

    from streaming_agents.runtime.environment import local_env

    # Modules next to the caller (agents loaded from the current directory).
    extra = {"python.pythonpath": os.getcwd(), **(restore or {})}
    if mode == "batch":
        env = local_env(checkpoint_interval_ms=None, extra_config=extra)
        env.set_runtime_mode(RuntimeExecutionMode.BATCH)
        return env
    # The agent operator back-pressures a bounded range (read at the pace of the calls):
    # unaligned barriers overtake the records queued in network buffers, so checkpoints
    # complete all along instead of waiting behind them (docs/replay.md).
    extra["execution.checkpointing.unaligned.enabled"] = "true"
    return local_env(checkpoint_interval_ms=checkpoint_interval_ms, extra_config=extra)


def fenced_agent_stream(
    pipeline: AgentPipeline,
    agent: Agent[Any],
    journal: JournalSpec,
    *,
    key_field: str,
    capacity: int,
    run_id: str,
    topic: str,
    bootstrap: str,
    audit_topic: str | None,
    security: KafkaSecurity | None,
    uid: str | None = None,
    memory_start: dict[str, Any] | None = None,
) -> DataStream:
    """The fenced agent on ``pipeline``: marked outputs and dead letters, one stream.

    ``uid`` is the agent operator's (default ``shadow-agent-<name>``; production's
    ``agent-<name>`` to restore its memory); ``memory_start`` goes into every mark."""
    from pyflink.common import Types

    from streaming_agents.connectors.audit import audit_sink

    streams = pipeline.key_by(key_field).apply(
        agent,
        capacity=capacity,
        journal=journal,
        uid=uid or f"shadow-agent-{agent.name}",
        fence_side_effects=True,
    )
    marked = streams.outputs.map(
        ShadowMark(run_id, topic, False, memory_start), output_type=Types.STRING()
    )
    dead = streams.dead_letters.map(
        ShadowMark(run_id, topic, True, memory_start), output_type=Types.STRING()
    )
    if audit_topic is not None:  # audit records of a fenced run carry "shadow": true
        audit_sink(
            streams.env,
            streams.audit,
            bootstrap,
            audit_topic,
            f"sa-audit-{run_id}",
            security=security,
        )
    return marked.union(dead)


def prepare_targets(
    bootstrap: str,
    topics: list[str | None],
    *,
    source_topic: str,
    production_topic: str | None,
    partitions: int,
    security: KafkaSecurity | None,
) -> None:
    """Create the shadow (and audit) topics if needed; refuse unsafe ones."""
    for target in topics:
        if target is not None:
            ensure_topic(bootstrap, target, partitions=partitions, security=security)
            check_shadow_target(
                bootstrap,
                target,
                source_topic=source_topic,
                production_topic=production_topic,
                security=security,
            )
