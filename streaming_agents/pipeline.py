"""One builder for the common agent job: Kafka records -> key -> agent -> Kafka.

::

    streams = (
        AgentPipeline.from_kafka(env, bootstrap, "claims", group_id="triage")
        .key_by("policy_id")
        .apply(agent)
    )
    streams.to_kafka(bootstrap, outputs="decisions", dead_letters="decisions-dlq",
                     transactional_id_prefix="triage")

What it builds, operator by operator (each named and with a stable uid):

1. ``source:<name>``: :func:`~streaming_agents.connectors.kafka_records.kafka_records`,
   the raw bytes of every record with its topic/partition/offset, read
   ``read_committed``; offsets are in Flink's checkpoints.  Nothing is decoded
   by the JVM, so a tombstone or invalid UTF-8 reaches Python as it is.
2. ``prepare:<name>``: each record is decoded exactly once, with the rules
   of :mod:`streaming_agents.runtime.safe_json` and the :class:`Limits`;
   optional topic roles are added and the :meth:`AgentPipeline.where` filter
   applied; the key is taken from the JSON field (with
   :meth:`AgentPipeline.key_by_content`: a hash of the whole event).
   Whatever cannot be used -- a missing, null, empty or over-long key
   included -- is turned into a rejection carried to the agent operator under
   :data:`MALFORMED_KEY`.  This step never raises on account of data.  Its
   uid is ``<uid>-prepare`` when :meth:`AgentPipeline.apply` is given a
   ``uid``, else ``<agent name>-prepare``.
3. ``agent:<name>@<version>``: :func:`~streaming_agents.runtime.api.run_agent`
   (uid ``agent-<name>`` unless given): outputs, dead letters (every rejection
   from step 2 included, with its reason) and audit records.
4. :meth:`AgentStreams.to_kafka`: ``EXACTLY_ONCE`` sinks for outputs and dead
   letters (and the audit topic when given).  Records become visible to
   ``read_committed`` consumers when the checkpoint after them completes; a
   failure aborts the open transaction and the replayed records are written
   once in the next.  Every record is at most ``Limits.max_record_bytes``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from streaming_agents.errors import ConfigError
from streaming_agents.runtime.events import (
    MALFORMED_KEY,
    PREPARED_FIELDS,
    Limits,
    Rejected,
    decode,
    original_of,
    parse_event,
    record_of,
)
from streaming_agents.runtime.keys import key_problem, split_path, value_at

if TYPE_CHECKING:
    from pyflink.datastream import DataStream, StreamExecutionEnvironment

    from streaming_agents.agent import Agent
    from streaming_agents.connectors.security import KafkaSecurity
    from streaming_agents.journal.factory import JournalSetting

__all__ = ["AgentPipeline", "AgentStreams", "Prepare", "content_key"]

Predicate = Callable[[dict[str, Any]], bool]


class Prepare:
    """Decode once, tag, filter and key one record (the ``prepare`` step's function).

    Returns ``None`` for a record the filter drops, else ``(key, envelope
    JSON, record timestamp)`` where the envelope is ``{"e": event, "s":
    source}`` or, for a record that cannot be used, ``{"x": rejection, "s":
    source}``, and the timestamp is the Kafka record's (epoch ms) or None.
    ``key_field=None`` keys each event by its content (:func:`content_key`).
    """

    def __init__(
        self,
        key_field: str | None,
        limits: Limits,
        roles: Mapping[str, str] | None = None,
        role_field: str | None = None,
        predicate: Predicate | None = None,
    ) -> None:
        self.key_field = key_field
        self.path = split_path(key_field) if key_field is not None else None
        self.limits = limits
        self.roles = dict(roles or {})
        self.role_field = role_field
        self.predicate = predicate

    def __call__(self, value: Any) -> tuple[str, str, int | None] | None:
        """``(key, envelope JSON, record timestamp in ms or None)``, or None (filtered)."""
        found = None
        try:
            found = record_of(value)  # once: decode() gets its bytes, the row its timestamp
            envelope = (
                decode(found[0], found[1], self.limits)
                if found is not None
                else parse_event(value, self.limits)
            )
            if isinstance(envelope, Rejected):
                return MALFORMED_KEY, self._rejection(envelope), _timestamp(found)
            decided = self._decide(envelope["e"], envelope["s"])
        except Exception as exc:  # noqa: BLE001 - a record must never fail the job
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            raw, source = found if found is not None else (None, None)
            bad = Rejected("malformed event", error, raw, None, source)
            return MALFORMED_KEY, self._rejection(bad), _timestamp(found)
        if isinstance(decided, Rejected):  # keep the bytes: the dead letter can carry them
            raw = found[0] if found is not None else None
            return MALFORMED_KEY, self._rejection(replace(decided, raw=raw)), _timestamp(found)
        return None if decided is None else (*decided, _timestamp(found))

    def _decide(self, event: dict[str, Any], source: Any) -> tuple[str, str] | Rejected | None:
        """``(key, envelope JSON)``, a rejection, or None when the filter drops the event."""
        if self.role_field is not None and source is not None:
            role = self.roles.get(str(source.get("topic")))
            if role is not None:
                event = {**event, self.role_field: role}
        if self.predicate is not None:
            try:
                keep = bool(self.predicate(event))
            except Exception as exc:  # noqa: BLE001 - the user's filter failing on data
                error = f"{type(exc).__name__}: {str(exc)[:500]}"
                return Rejected("filter failed", error, None, event, source)
            if not keep:
                return None
        if self.path is None:
            return content_key(event), json.dumps({"e": event, "s": source}, ensure_ascii=False)
        value = value_at(event, self.path)
        problem = key_problem(value, self.limits.max_key_chars)
        if problem is not None:
            error = (
                f"the key field {self.key_field!r} {problem} (a key is a non-empty string or an "
                f"integer of at most {self.limits.max_key_chars} characters)"
            )
            return Rejected("no key", error, None, event, source)
        key = value if isinstance(value, str) else str(value)
        return key, json.dumps({"e": event, "s": source}, ensure_ascii=False)

    def _rejection(self, rejected: Rejected) -> str:
        raw = rejected.raw
        fits = raw is not None and 4 * len(raw) // 3 < self.limits.max_record_bytes // 2
        body = {
            "reason": rejected.reason,
            "error": rejected.error,
            "payload": rejected.payload,
            "b64": base64.b64encode(raw).decode() if fits and raw is not None else None,
            "original": original_of(raw) or rejected.original,
        }
        return json.dumps({"x": body, "s": rejected.source}, default=str)


def content_key(event: dict[str, Any]) -> str:
    """``"content:<sha256 hex>"`` of the event's canonical JSON (sorted keys, ASCII).

    Equal events get equal keys; 72 characters whatever the event's size.
    """
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return "content:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _timestamp(found: tuple[bytes | None, dict[str, Any]] | None) -> int | None:
    return found[1].get("timestamp_ms") if found is not None else None


class _PrepareRows:
    """flat_map adapter: a :class:`Prepare` result as a ``Row(sa_key, sa_envelope, sa_ts)``.

    ``sa_ts`` is the Kafka record's timestamp (epoch ms, None when unknown).
    """

    def __init__(self, prepare: Prepare) -> None:
        self.prepare = prepare

    def __call__(self, value: Any) -> Any:
        from pyflink.common import Row

        prepared = self.prepare(value)
        if prepared is not None:
            row = Row(*prepared)
            row.set_field_names(list(PREPARED_FIELDS))
            yield row


class _RecordTimestamp:
    """Timestamp assigner: the Kafka record's timestamp carried in ``sa_ts`` (0 if unknown)."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value[2] or 0)


def _prepared_key(row: Any) -> str:
    return str(row[0])


def _record_time() -> Any:
    from pyflink.common import WatermarkStrategy
    from pyflink.common.watermark_strategy import TimestampAssigner

    class Assigner(_RecordTimestamp, TimestampAssigner):  # type: ignore[misc]
        pass

    return WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(Assigner())


@dataclass(frozen=True)
class AgentStreams:
    """The three streams of an applied agent."""

    outputs: DataStream
    dead_letters: DataStream
    audit: DataStream
    name: str
    env: StreamExecutionEnvironment

    def to_kafka(
        self,
        bootstrap: str,
        *,
        outputs: str,
        dead_letters: str,
        transactional_id_prefix: str,
        audit: str | None = None,
        properties: Mapping[str, str] | None = None,
        security: KafkaSecurity | None = None,
        uid: str | None = None,
    ) -> None:
        """Exactly-once sinks: outputs and dead letters (and audit records, if ``audit``).

        ``transactional_id_prefix`` must be unique per job on a cluster and
        stable across its restarts; each sink appends its role to it.
        ``properties`` are extra producer properties, ``security`` the
        client-security setting.  The sinks keep state (their open
        transactions) under the uids ``<uid>-sink-out`` and ``<uid>-sink-dlq``;
        ``uid`` defaults to the agent's name, which jobs' existing savepoints
        use.  A job that writes two applications of one agent to Kafka gives
        each its own ``uid`` (Flink refuses a job whose uids collide).
        """
        from streaming_agents.connectors.audit import audit_sink
        from streaming_agents.connectors.kafka import exactly_once_sink

        props = dict(properties or {})
        for stream, topic, role in (
            (self.outputs, outputs, "out"),
            (self.dead_letters, dead_letters, "dlq"),
        ):
            sink = exactly_once_sink(
                bootstrap,
                topic,
                f"{transactional_id_prefix}-{role}",
                properties=props,
                security=security,
            )
            stream.sink_to(sink).name(f"{role}:{topic}").uid(f"{uid or self.name}-sink-{role}")
        if audit is not None:
            prefix = f"{transactional_id_prefix}-audit"
            audit_sink(
                self.env, self.audit, bootstrap, audit, prefix, properties=props, security=security
            )


class AgentPipeline:
    """A stream of input records on its way to an agent (see the module docstring)."""

    def __init__(
        self,
        stream: DataStream,
        name: str,
        *,
        roles: Mapping[str, str] | None = None,
        role_field: str | None = None,
        event_time: bool = False,
    ) -> None:
        self.stream = stream
        self.name = name
        self._roles = dict(roles or {})
        self._role_field = role_field
        self._predicate: Predicate | None = None
        self._event_time = event_time
        self._key_field: str | None = None
        self._keyed = False
        self._limits = Limits()

    @classmethod
    def from_kafka(
        cls,
        env: StreamExecutionEnvironment,
        bootstrap: str,
        topics: str | Sequence[str] | Mapping[str, str],
        group_id: str,
        *,
        role_field: str | None = None,
        starting: str | int | Mapping[int, int] = "earliest-offset",
        bounded: bool | int | Mapping[int, int] = False,
        properties: Mapping[str, str] | None = None,
        security: KafkaSecurity | None = None,
        event_time: bool = False,
        name: str | None = None,
    ) -> AgentPipeline:
        """Records of ``topics`` with their coordinates (see ``kafka_records`` for the options).

        ``topics`` as ``{role: topic}`` with ``role_field`` adds ``role_field:
        role`` to each event, naming the topic it came from.  ``event_time``
        stamps each record with its Kafka timestamp (watermarks following it);
        Flink's BATCH mode orders a key's records by it, so a batch replay
        sees them in production's order (a Python step drops the source's own
        timestamps).
        """
        from streaming_agents.connectors.kafka_records import kafka_records
        from streaming_agents.runtime.execution import use_thread_mode

        if isinstance(topics, Mapping):
            names, roles = list(topics.values()), {t: r for r, t in topics.items()}
        else:
            names, roles = ([topics] if isinstance(topics, str) else list(topics)), {}
        if role_field is not None and not roles:
            raise ConfigError("role_field needs topics given as {role: topic}")
        rows = kafka_records(
            env,
            bootstrap,
            names,
            group_id,
            starting=starting,
            bounded=bounded,
            properties=properties,
            security=security,
        )
        use_thread_mode(rows)  # before the first Python operator is built
        label = name or "+".join(names)
        return cls(rows, label, roles=roles, role_field=role_field, event_time=event_time)

    @classmethod
    def from_datastream(cls, stream: DataStream, name: str = "events") -> AgentPipeline:
        """Any stream the agent operator accepts (``kafka_records`` rows, JSON str/bytes, dicts)."""
        from streaming_agents.runtime.execution import use_thread_mode

        use_thread_mode(stream)
        return cls(stream, name)

    def where(self, predicate: Predicate) -> AgentPipeline:
        """Keep only events for which ``predicate(event)`` is true (an exception dead-letters)."""
        self._predicate = predicate
        return self

    def key_by(self, field: str, limits: Limits | None = None) -> AgentPipeline:
        """Key by the JSON field (or dotted path) ``field``; ``limits`` bound the input."""
        split_path(field)
        self._key_field, self._keyed = field, True
        self._limits = limits or Limits()
        return self

    def key_by_content(self, limits: Limits | None = None) -> AgentPipeline:
        """Key each event by a hash of its whole content (for agents without memory).

        Equal events share a key (and so an order and a memory); every event
        has one, so none is dead-lettered for want of a key.
        """
        self._key_field, self._keyed = None, True
        self._limits = limits or Limits()
        return self

    def apply(
        self,
        agent: Agent[Any],
        *,
        capacity: int = 100,
        journal: JournalSetting = None,
        uid: str | None = None,
        fence_side_effects: bool = False,
        llm_processes: int = 0,
    ) -> AgentStreams:
        """Decode and key the records, then run ``agent`` (see :func:`run_agent`).

        ``uid`` is the agent operator's (default ``agent-<name>``); the
        prepare step's is ``<uid>-prepare`` (default ``<name>-prepare``), so
        two call sites of one agent in one job differ by their ``uid``.
        """
        from pyflink.common import Types
        from pyflink.datastream import StreamExecutionEnvironment

        from streaming_agents.runtime.api import audit_log, dead_letters, run_agent

        if not self._keyed:
            raise ConfigError("call .key_by(field) or .key_by_content() before .apply(agent)")
        prepare = Prepare(
            self._key_field, self._limits, self._roles, self._role_field, self._predicate
        )
        row_type = Types.ROW_NAMED(
            list(PREPARED_FIELDS), [Types.STRING(), Types.STRING(), Types.LONG()]
        )
        prepared = (
            self.stream.flat_map(_PrepareRows(prepare), output_type=row_type)
            .name(f"prepare:{self.name}")
            .uid(f"{uid}-prepare" if uid is not None else f"{agent.name}-prepare")
        )
        if self._event_time:
            prepared = prepared.assign_timestamps_and_watermarks(_record_time()).name(
                f"record-time:{self.name}"
            )
        out = run_agent(
            prepared.key_by(_prepared_key, key_type=Types.STRING()),
            agent,
            capacity=capacity,
            journal=journal,
            uid=uid,
            fence_side_effects=fence_side_effects,
            limits=self._limits,
            llm_processes=llm_processes,
        )
        env = StreamExecutionEnvironment(out._j_data_stream.getExecutionEnvironment())
        return AgentStreams(out, dead_letters(out), audit_log(out), agent.name, env)
