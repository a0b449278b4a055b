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

**Live shadow**: :mod:`streaming_agents.replay.shadow`; what both share (run
folders, the fenced agent stream, shadow marks): :mod:`~.runs`; the result:
:mod:`~.result`.

**Memory start.**  By default a replay starts every key with empty memory.
With ``memory_from=`` (a production savepoint or retained checkpoint) the job
is restored from it with the agent under production's uid, so each key starts
with production's memory (migrated by the candidate's ``Memory.migrate``),
and -- unless the range says otherwise -- reads on from the offsets the
savepoint's source had reached (:mod:`streaming_agents.replay.memory_start`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

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
from streaming_agents.replay.divergence import fenced_calls, find_divergences
from streaming_agents.replay.errors import SchemaMismatch
from streaming_agents.replay.memory_start import MemoryStart, savepoint_offsets
from streaming_agents.replay.progress import ProgressBar
from streaming_agents.replay.ranges import Position, ReplayRange, ResolvedRange
from streaming_agents.replay.result import ReplayResult
from streaming_agents.replay.runs import (
    Mode,
    fenced_agent_stream,
    make_run_dir,
    new_run_id,
    prepare_targets,
    run_env,
    run_journal,
)
from streaming_agents.replay.shadow import ShadowRun, shadow
from streaming_agents.replay.topics import read_topic, refuse_unsafe_names, topic_end_offsets

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

__all__ = ["ReplayResult", "ShadowRun", "replay", "shadow"]


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
    prepare_targets(
        bootstrap,
        [shadow_topic, audit_topic],
        source_topic=topic,
        production_topic=production_topic,
        partitions=len(resolved.offsets),
        security=security,
    )
    run = _Run(agent, bootstrap, topic, shadow_topic, resolved, security, memory)
    run.open(run_dir, journal)
    env = run_env(mode, checkpoint_interval_ms, memory.flink_config(run.run_id))
    _build_job(env, run, key_field, capacity, mode, audit_topic)
    started = time.monotonic()
    bar = _execute(env, run, progress)
    result = run.result(time.monotonic() - started)
    if bar is not None:
        bar.finish(result.outputs)
    return result


@dataclass
class _Run:
    """One replay's coordinates and bookkeeping, from its start to its result."""

    agent: Agent[Any]
    bootstrap: str
    topic: str
    shadow_topic: str
    resolved: ResolvedRange
    security: KafkaSecurity | None
    memory: MemoryStart
    run_id: str = ""
    run_path: Path = Path()
    spec: JournalSpec | None = None
    since: int = 0
    baseline: dict[int, int] | None = None

    def open(self, run_dir: str | Path | None, journal: str | Path | None) -> None:
        """The run's folder and journal; fails before the job when production's
        journal cannot be read."""
        self.run_id = new_run_id(self.agent)
        self.run_path = make_run_dir(run_dir, self.run_id)
        self.spec = run_journal(self.run_path, self.run_id, _production_uri(journal))
        logs = _Logs(self.spec, self.agent, self.security)
        try:
            self.since = logs.own.last_request_seq()
            if logs.production is not None:
                logs.production.last_request_seq()
        finally:
            logs.close()
        self.baseline = topic_end_offsets(self.bootstrap, self.shadow_topic, security=self.security)

    def written(self) -> list[dict[str, Any]]:
        """This run's records on the shadow topic (outputs and dead letters)."""
        records = read_topic(
            self.bootstrap, self.shadow_topic, start=self.baseline, security=self.security
        )
        return [
            doc
            for doc in parse_outputs(records, self.shadow_topic)
            if (doc.get("replay") or {}).get("run") == self.run_id
        ]

    def result(self, elapsed: float) -> ReplayResult:
        """Count what the run wrote and paid; write ``summary.json`` in the run folder."""
        assert self.spec is not None, "open() first"
        written = self.written()
        dead = sum(1 for doc in written if doc.get("dead_letter") is True)
        logs = _Logs(self.spec, self.agent, self.security)
        try:
            own, production = logs.own, logs.production
            name = self.agent.name
            made = len(own.recorded_requests(agent=name, kind="llm", after_seq=self.since))
            fenced = fenced_calls(own, name, self.since)
            divergences = (
                []
                if production is None
                else find_divergences(own, name, self.since, recorded=production)
            )
        finally:
            logs.close()
        result = ReplayResult(
            run_id=self.run_id,
            agent=self.agent.name,
            version=self.agent.version,
            topic=self.topic,
            shadow_topic=self.shadow_topic,
            range=self.resolved,
            outputs=len(written) - dead,
            dead_letters=dead,
            llm_calls_made=made,
            fenced=fenced,
            divergences=divergences,
            journal_path=str(self.run_path / "journal.sqlite"),
            journal_given=self.spec.read_from is not None,
            elapsed_s=elapsed,
            run_dir=str(self.run_path),
            shadow_start=dict(self.baseline or {}),
            memory_start=self.memory,
        )
        summary = json.dumps(result.to_dict(), indent=1, default=str)
        (self.run_path / "summary.json").write_text(summary)
        return result


def _build_job(
    env: StreamExecutionEnvironment,
    run: _Run,
    key_field: str,
    capacity: int,
    mode: Mode,
    audit_topic: str | None,
) -> None:
    """Bounded source over the resolved offsets -> fenced agent -> exactly-once shadow sink."""
    from streaming_agents.connectors.kafka import exactly_once_sink

    assert run.spec is not None, "open() first"
    offsets = run.resolved.offsets
    pipeline = AgentPipeline.from_kafka(
        env,
        run.bootstrap,
        run.topic,
        f"sa-replay-{run.run_id}",
        starting={p: bounds[0] for p, bounds in offsets.items()},
        bounded={p: bounds[1] for p, bounds in offsets.items()},
        properties={"commit.offsets.on.checkpoint": "false"},
        security=run.security,
        event_time=mode == "batch",  # BATCH orders a key's records by their timestamps
        name=f"replay:{run.topic}",
    )
    stream = fenced_agent_stream(
        pipeline,
        run.agent,
        run.spec,
        key_field=key_field,
        capacity=capacity,
        run_id=run.run_id,
        topic=run.topic,
        bootstrap=run.bootstrap,
        audit_topic=audit_topic,
        security=run.security,
        uid=run.memory.agent_uid,
        memory_start=run.memory.to_dict(),
    )
    transactional_prefix = f"sa-replay-{run.run_id}"
    stream.sink_to(
        exactly_once_sink(
            run.bootstrap, run.shadow_topic, transactional_prefix, security=run.security
        )
    )


def _execute(
    env: StreamExecutionEnvironment, run: _Run, progress: bool | TextIO
) -> ProgressBar | None:
    """Run the job to its end, with a progress bar on ``progress`` (a stream, or stderr)."""
    name = f"replay {run.agent.name}@{run.agent.version} {run.run_id}"
    if not progress:
        env.execute(name)
        return None
    bar = ProgressBar(
        run.bootstrap,
        run.shadow_topic,
        run.resolved.expected,
        run.baseline or {},
        stream=progress if not isinstance(progress, bool) else sys.stderr,
        security=run.security,
    )
    with bar:
        env.execute(name)
    return bar


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
