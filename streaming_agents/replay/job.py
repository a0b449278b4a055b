"""Replay history and dark-launch a candidate: the Flink jobs and their bookkeeping.

**Replay** (:func:`replay`): a bounded ``KafkaSource`` reads exact offsets
(the resolved :class:`ReplayRange`), the agent runs with side effects fenced,
and every output -- marked ``"shadow": true`` with the run id -- goes to the
shadow topic through the exactly-once sink.  The source's consumer group is
the run's own and commits nothing; the production group, input and output
topics are only read.  With ``journal=`` (the production journal's URI:
``kafka://bootstrap/topic?scope=JOB`` or ``sqlite:///path``; a plain path is
a SQLite file) the replay answers from production's journal where it is --
read-only, never copied or written -- and writes what it pays for to its own
journal in the run folder (:mod:`streaming_agents.journal.overlay`): calls
the record can answer cost nothing and are answered exactly as in
production; the calls it had to make show where the candidate diverged
(:mod:`streaming_agents.replay.divergence`).

**Execution mode.**  Streaming mode with a bounded source is the default:
keys are processed concurrently (up to ``capacity`` calls in flight).  The
agent operator's end-of-input event-time timer commits each key's last
events when the input ends (processing-time timers are dropped then).
``mode="batch"`` runs Flink's BATCH mode: verified to emit every output,
but BATCH sorts the input by key and keeps one key's state at a time, so the
operator finishes a key (its end-of-key event-time timer) before the next
starts -- LLM calls run one at a time.  It fits replays answered entirely
from a journal (no calls to wait for), not ones that pay for calls.

**Live shadow** (:func:`shadow`): an unbounded source in its own consumer
group from ``latest`` (or a timestamp), same fencing and marking; returns a
handle to stop it.

**Memory start.**  By default a replay starts every key with empty memory.
With ``memory_from=`` (a production savepoint or retained checkpoint) the job
is restored from it with the agent under production's uid, so each key starts
with production's memory (migrated by the candidate's ``Memory.migrate``),
and -- unless the range says otherwise -- reads on from the offsets the
savepoint's source had reached (:mod:`streaming_agents.replay.memory_start`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from streaming_agents.agent import Agent
from streaming_agents.errors import ConfigError
from streaming_agents.journal.base import RequestLog
from streaming_agents.journal.factory import (
    JournalSpec,
    as_journal_uri,
    open_journal,
    open_reader,
    request_log,
)
from streaming_agents.pipeline import AgentPipeline
from streaming_agents.replay.compare import parse_outputs
from streaming_agents.replay.divergence import (
    Divergence,
    FencedCall,
    fenced_calls,
    find_divergences,
)
from streaming_agents.replay.errors import SchemaMismatch
from streaming_agents.replay.memory_start import MemoryStart, savepoint_offsets
from streaming_agents.replay.progress import ProgressBar
from streaming_agents.replay.ranges import Position, ReplayRange, ResolvedRange
from streaming_agents.replay.topics import (
    check_shadow_target,
    ensure_topic,
    read_topic,
    refuse_unsafe_names,
    topic_end_offsets,
)

if TYPE_CHECKING:
    from pyflink.datastream import DataStream, StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

__all__ = ["ReplayResult", "ShadowMark", "ShadowRun", "replay", "shadow"]

Mode = Literal["streaming", "batch"]


class ShadowMark:
    """Map function: mark an output (or dead letter) as a shadow run's."""

    def __init__(self, run_id: str, source_topic: str, dead_letter: bool = False) -> None:
        self.run_id = run_id
        self.source_topic = source_topic
        self.dead_letter = dead_letter

    def __call__(self, line: str) -> str:
        try:
            doc = json.loads(line)
        except ValueError:
            doc = {"raw": line}
        if not isinstance(doc, dict):
            doc = {"raw": doc}
        doc["shadow"] = True
        doc["replay"] = {"run": self.run_id, "topic": self.source_topic}
        if self.dead_letter:
            doc["dead_letter"] = True
        return json.dumps(doc)


def _run_dir(run_dir: str | Path | None, run_id: str) -> Path:
    root = run_dir or os.environ.get("STREAMING_AGENTS_REPLAY_DIR")
    base = Path(root) if root else Path(tempfile.gettempdir()) / "streaming_agents" / "replay"
    path = base / run_id
    path.mkdir(parents=True, exist_ok=False)
    return path


def _new_run_id(agent: Agent[Any]) -> str:
    safe = "".join(
        ch if ch.isalnum() or ch in "-_." else "-" for ch in f"{agent.name}-{agent.version}"
    )
    return f"{safe}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _run_journal(run_path: Path, run_id: str, production: str | None) -> JournalSpec:
    """The operator's journal: the run's own file, over ``production`` read-only if given."""
    own = f"sqlite://{(run_path / 'journal.sqlite').resolve()}"
    return JournalSpec(uri=own, job=run_id, read_from=production)


class _Logs:
    """The run's own request log and production's (read-only), opened on the client."""

    def __init__(
        self, spec: JournalSpec, agent: Agent[Any], security: KafkaSecurity | None
    ) -> None:
        from streaming_agents.connectors.security import librdkafka_config

        self._own = open_journal(spec.uri, agent=agent.name, version=agent.version, job=spec.job)
        props = librdkafka_config(security) if security is not None else None
        self._production = (
            None
            if spec.read_from is None
            else open_reader(spec.read_from, agent=agent.name, properties=props)
        )

    @property
    def own(self) -> RequestLog:
        log = request_log(self._own)
        assert log is not None, "the run's own journal is SQLite"
        return log

    @property
    def production(self) -> RequestLog | None:
        return None if self._production is None else request_log(self._production)

    def close(self) -> None:
        self._own.close()
        if self._production is not None:
            self._production.close()


def _production_uri(journal: str | Path | None) -> str | None:
    """The production journal's URI (``None``: no journal); checked readable before the job."""
    return None if journal is None else as_journal_uri(str(journal))


def _check_events(
    bootstrap: str, resolved: ResolvedRange, key_field: str, security: KafkaSecurity | None
) -> None:
    """The range's first records must be JSON objects with the key field."""
    start = {p: a for p, (a, b) in resolved.offsets.items() if b > a}
    if not start:
        return
    sample = read_topic(bootstrap, resolved.topic, start=start, timeout_s=30, security=security)
    sample = sample[:20]
    for record in sample:
        try:
            event = json.loads(record.value or b"")
        except ValueError:
            continue
        if isinstance(event, dict) and key_field in event:
            return
    first = (sample[0].value or b"")[:200].decode("utf-8", "replace") if sample else ""
    raise SchemaMismatch(
        f"the first records of {resolved.topic} are not JSON objects with the key field "
        f"{key_field!r} (e.g. {first!r}): pass the field production keys by (--key)"
    )


def _env(
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


def _agent_stream(
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
) -> DataStream:
    """The fenced agent on ``pipeline``: marked outputs and dead letters, one stream.

    ``uid`` is the agent operator's (default ``shadow-agent-<name>``; production's
    ``agent-<name>`` to restore its memory)."""
    from pyflink.common import Types

    from streaming_agents.connectors.audit import audit_sink

    streams = pipeline.key_by(key_field).apply(
        agent,
        capacity=capacity,
        journal=journal,
        uid=uid or f"shadow-agent-{agent.name}",
        fence_side_effects=True,
    )
    marked = streams.outputs.map(ShadowMark(run_id, topic), output_type=Types.STRING())
    dead = streams.dead_letters.map(ShadowMark(run_id, topic, True), output_type=Types.STRING())
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


def _prepare_targets(
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


@dataclass
class ReplayResult:
    """What a replay did; ``summary()`` prints it."""

    run_id: str
    agent: str
    version: str
    topic: str
    shadow_topic: str
    range: ResolvedRange
    outputs: int
    dead_letters: int
    llm_calls_made: int
    fenced: list[FencedCall]
    divergences: list[Divergence]
    journal_path: str
    journal_given: bool
    elapsed_s: float
    run_dir: str
    shadow_start: dict[int, int] = field(default_factory=dict)
    memory_start: MemoryStart = field(default_factory=MemoryStart)

    @property
    def expected(self) -> int:
        return self.range.expected

    def summary(self) -> str:
        lines = [
            f"replay {self.run_id}: {self.agent}@{self.version} on {self.range.describe()}",
            f"  -> {self.shadow_topic}: {self.outputs} outputs, {self.dead_letters} dead letters "
            f"in {self.elapsed_s:.1f} s",
            f"  memory start: {self.memory_start.describe()}",
            f"  LLM calls made: {self.llm_calls_made}"
            + (
                " (every other call answered from the production journal)"
                if self.journal_given
                else ""
            ),
            f"  side-effecting tool calls not run: {len(self.fenced)}",
        ]
        for call in self.fenced[:10]:
            where = f"key {call.key!r} turn {call.turn}"
            lines.append(f"    {where}: {call.tool}({call.arguments}) [{call.outcome}]")
        if self.journal_given:
            if self.divergences:
                lines.append(f"  diverged from the record on {len(self.divergences)} keys:")
                for div in self.divergences[:20]:
                    lines.extend("    " + ln for ln in div.describe().splitlines())
            else:
                lines.append("  every request matched the record (deterministic re-run)")
        lines.append(f"  run files: {self.run_dir}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "version": self.version,
            "topic": self.topic,
            "shadow_topic": self.shadow_topic,
            "range": {str(p): list(v) for p, v in self.range.offsets.items()},
            "expected": self.expected,
            "outputs": self.outputs,
            "dead_letters": self.dead_letters,
            "llm_calls_made": self.llm_calls_made,
            "fenced": [c.to_dict() for c in self.fenced],
            "divergences": [d.to_dict() for d in self.divergences],
            "journal": self.journal_path,
            "elapsed_s": self.elapsed_s,
            "memory_start": self.memory_start.to_dict(),
        }


def replay(
    agent: Agent[Any],
    *,
    bootstrap: str,
    topic: str,
    shadow_topic: str,
    range: ReplayRange | None = None,
    key_field: str = "key",
    journal: str | Path | None = None,
    production_topic: str | None = None,
    capacity: int = 100,
    mode: Mode = "streaming",
    progress: bool | TextIO = True,
    run_dir: str | Path | None = None,
    checkpoint_interval_ms: int = 1000,
    audit_topic: str | None = None,
    security: KafkaSecurity | None = None,
    memory_from: str | Path | None = None,
) -> ReplayResult:
    """Run ``agent`` over ``range`` of ``topic`` into ``shadow_topic``; see the module doc.

    ``journal`` is the production journal (a URI, or a SQLite file's path) to
    answer from, read-only: the run writes only its own journal;
    ``production_topic`` (optional) is refused as a shadow topic;
    ``audit_topic`` (optional) receives the run's audit records; ``security``
    is the Kafka client-security setting of every client (readers, source, sinks);
    ``memory_from`` (a production savepoint or retained checkpoint, local path or
    ``file://``) starts each key with production's memory and, when ``range``
    is None or starts at ``Position.savepoint()``, reads from the savepoint's
    offsets of ``topic``.  Raises
    :class:`~streaming_agents.replay.errors.ReplayError` subclasses (user
    errors) for bad ranges, missing topics, events without the key field and
    unsafe shadow topics -- before any job starts.
    """
    if mode not in ("streaming", "batch"):
        raise ConfigError(f"mode must be 'streaming' or 'batch', got {mode!r}")
    for target in (shadow_topic, audit_topic):
        if target is not None:
            refuse_unsafe_names(target, source_topic=topic, production_topic=production_topic)
    rng, memory = _memory_start(agent, topic, range, memory_from, mode)
    resolved = rng.resolve(bootstrap, topic, security=security)
    _check_events(bootstrap, resolved, key_field, security)
    _prepare_targets(
        bootstrap,
        [shadow_topic, audit_topic],
        source_topic=topic,
        production_topic=production_topic,
        partitions=len(resolved.offsets),
        security=security,
    )

    run_id = _new_run_id(agent)
    run_path = _run_dir(run_dir, run_id)
    spec = _run_journal(run_path, run_id, _production_uri(journal))
    journal_given = spec.read_from is not None
    logs = _Logs(spec, agent, security)
    try:  # fail before the job when production's journal cannot be read
        since = logs.own.last_request_seq()
        if logs.production is not None:
            logs.production.last_request_seq()
    finally:
        logs.close()
    baseline = topic_end_offsets(bootstrap, shadow_topic, security=security)

    from streaming_agents.connectors.kafka import exactly_once_sink

    env = _env(mode, checkpoint_interval_ms, memory.flink_config(run_id))
    pipeline = AgentPipeline.from_kafka(
        env,
        bootstrap,
        topic,
        f"sa-replay-{run_id}",
        starting={p: bounds[0] for p, bounds in resolved.offsets.items()},
        bounded={p: bounds[1] for p, bounds in resolved.offsets.items()},
        properties={"commit.offsets.on.checkpoint": "false"},
        security=security,
        event_time=mode == "batch",  # BATCH orders a key's records by their timestamps
        name=f"replay:{topic}",
    )
    stream = _agent_stream(
        pipeline,
        agent,
        spec,
        key_field=key_field,
        capacity=capacity,
        run_id=run_id,
        topic=topic,
        bootstrap=bootstrap,
        audit_topic=audit_topic,
        security=security,
        uid=memory.agent_uid,
    )
    stream.sink_to(
        exactly_once_sink(bootstrap, shadow_topic, f"sa-replay-{run_id}", security=security)
    )

    started = time.monotonic()
    if progress:
        out_stream = progress if not isinstance(progress, bool) else sys.stderr
        bar = ProgressBar(
            bootstrap,
            shadow_topic,
            resolved.expected,
            baseline,
            stream=out_stream,
            security=security,
        )
        with bar:
            env.execute(f"replay {agent.name}@{agent.version} {run_id}")
    else:
        env.execute(f"replay {agent.name}@{agent.version} {run_id}")
    elapsed = time.monotonic() - started

    written = [
        doc
        for doc in parse_outputs(
            read_topic(bootstrap, shadow_topic, start=baseline, security=security), shadow_topic
        )
        if (doc.get("replay") or {}).get("run") == run_id
    ]
    dead = sum(1 for doc in written if doc.get("dead_letter") is True)
    if progress:
        bar.finish(len(written) - dead)
    logs = _Logs(spec, agent, security)
    try:
        own, production = logs.own, logs.production
        made = len(own.recorded_requests(agent=agent.name, kind="llm", after_seq=since))
        fenced = fenced_calls(own, agent.name, since)
        divergences = (
            find_divergences(own, agent.name, since, recorded=production)
            if production is not None
            else []
        )
    finally:
        logs.close()
    result = ReplayResult(
        run_id=run_id,
        agent=agent.name,
        version=agent.version,
        topic=topic,
        shadow_topic=shadow_topic,
        range=resolved,
        outputs=len(written) - dead,
        dead_letters=dead,
        llm_calls_made=made,
        fenced=fenced,
        divergences=divergences,
        journal_path=str(run_path / "journal.sqlite"),
        journal_given=journal_given,
        elapsed_s=elapsed,
        run_dir=str(run_path),
        shadow_start=baseline,
        memory_start=memory,
    )
    (run_path / "summary.json").write_text(json.dumps(result.to_dict(), indent=1, default=str))
    return result


def _memory_start(
    agent: Agent[Any],
    topic: str,
    range: ReplayRange | None,
    memory_from: str | Path | None,
    mode: Mode,
) -> tuple[ReplayRange, MemoryStart]:
    """The range to read and how memory starts (see :mod:`~.memory_start`)."""
    if memory_from is None:
        return range or ReplayRange(), MemoryStart()
    if mode == "batch":
        raise ConfigError("a replay on production memory runs in streaming mode (not --mode batch)")
    memory = MemoryStart.from_savepoint(memory_from, agent.name)
    rng = range or ReplayRange(Position.savepoint())
    if rng.start.kind != "savepoint":
        return rng, memory
    assert memory.savepoint is not None
    offsets = savepoint_offsets(memory.savepoint, topic)
    return rng.from_offsets(offsets), memory.with_offsets(offsets)


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
    _prepare_targets(
        bootstrap,
        [shadow_topic, audit_topic],
        source_topic=topic,
        production_topic=production_topic,
        partitions=len(end),
        security=security,
    )
    run_id = _new_run_id(agent)
    run_path = _run_dir(run_dir, run_id)
    group = group_id or f"sa-shadow-{agent.name}-{agent.version}"
    journal = _run_journal(run_path, run_id, None)
    memory, start_at = _shadow_memory(agent, topic, starting, memory_from)
    env = _env("streaming", checkpoint_interval_ms, memory.flink_config(run_id))
    pipeline = AgentPipeline.from_kafka(
        env,
        bootstrap,
        topic,
        group,
        starting=start_at,
        security=security,
        name=f"shadow:{topic}",
    )
    stream = _agent_stream(
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
