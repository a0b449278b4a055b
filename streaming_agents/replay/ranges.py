"""Which records of a topic a replay reads: from/to positions resolved to offsets.

A position is ``earliest``, ``latest``, a timestamp (epoch milliseconds, or an
ISO-8601 time; UTC when it has no offset) or offsets (``offset:N`` for every
partition, ``offset:0=N,1=M`` per partition) or ``savepoint``: the offsets a
production savepoint's Kafka source had reached (a replay on production's
memory, :mod:`streaming_agents.replay.memory_start`), filled in with
:meth:`ReplayRange.from_offsets` before the range is resolved.  A range is half-open: it reads
records with ``from <= timestamp < to`` (timestamps) or ``from <= offset < to``
(offsets); ``latest`` as ``to`` is the end of each partition when the replay
starts.  Resolution asks the broker (``offsets_for_times``, watermarks), so the
job gets explicit start and stop offsets and the replay knows how many records
to expect.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from streaming_agents.connectors.security import KafkaSecurity, librdkafka_config
from streaming_agents.replay.errors import BadRange, MissingTopic, NotAuthorized

__all__ = ["Position", "ReplayRange", "ResolvedRange", "parse_position", "topic_partitions"]

Kind = Literal["earliest", "latest", "timestamp", "offset", "savepoint"]

# Clocks of the broker and of this machine may differ a little.
FUTURE_SKEW_MS = 5_000
_OFFSETS = re.compile(r"^offset:(?:(\d+)|((?:\d+=\d+)(?:,\d+=\d+)*))$")


@dataclass(frozen=True)
class Position:
    """One end of a replay range."""

    kind: Kind
    timestamp_ms: int | None = None
    offset: int | None = None
    offsets: dict[int, int] = field(default_factory=dict)

    @staticmethod
    def earliest() -> Position:
        return Position("earliest")

    @staticmethod
    def latest() -> Position:
        return Position("latest")

    @staticmethod
    def at_time(timestamp_ms: int) -> Position:
        return Position("timestamp", timestamp_ms=int(timestamp_ms))

    @staticmethod
    def savepoint() -> Position:
        """Where the memory savepoint's source stood (replaced before resolving)."""
        return Position("savepoint")

    @staticmethod
    def at_offset(offset: int | dict[int, int]) -> Position:
        if isinstance(offset, dict):
            return Position("offset", offsets={int(p): int(o) for p, o in offset.items()})
        return Position("offset", offset=int(offset))

    def describe(self) -> str:
        if self.kind == "timestamp" and self.timestamp_ms is not None:
            when = datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
            return f"{when.isoformat(timespec='milliseconds')} ({self.timestamp_ms} ms)"
        if self.kind == "offset":
            if self.offsets:
                return "offsets " + ",".join(f"{p}={o}" for p, o in sorted(self.offsets.items()))
            return f"offset {self.offset}"
        return self.kind


def parse_position(text: str, *, what: str = "position") -> Position:
    """A :class:`Position` from its command-line form (see the module doc)."""
    value = text.strip()
    lowered = value.lower()
    if lowered == "earliest":
        return Position.earliest()
    if lowered in ("latest", "now"):
        return Position.latest()
    if lowered == "savepoint":
        return Position.savepoint()
    match = _OFFSETS.match(lowered)
    if match:
        if match.group(1) is not None:
            return Position.at_offset(int(match.group(1)))
        pairs = (item.split("=") for item in match.group(2).split(","))
        return Position.at_offset({int(p): int(o) for p, o in pairs})
    if lowered.startswith("offset:"):
        raise BadRange(f"{what} {text!r}: use offset:N or offset:PARTITION=N,PARTITION=N")
    if re.fullmatch(r"\d+", value):
        return Position.at_time(int(value))
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRange(
            f"{what} {text!r} is not a time or offset: use an ISO-8601 time "
            "(2024-05-01T12:00:00Z), epoch milliseconds, offset:N, earliest or latest"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return Position.at_time(int(when.timestamp() * 1000))


@dataclass(frozen=True)
class ResolvedRange:
    """Start (inclusive) and stop (exclusive) offsets per partition of ``topic``."""

    topic: str
    offsets: dict[int, tuple[int, int]]

    @property
    def expected(self) -> int:
        """Records in the range (transaction markers of a transactional topic included)."""
        return sum(stop - start for start, stop in self.offsets.values())

    def describe(self) -> str:
        parts = ", ".join(f"p{p}:[{a},{b})" for p, (a, b) in sorted(self.offsets.items()))
        return f"{self.topic} {parts} ({self.expected} records)"


@dataclass(frozen=True)
class ReplayRange:
    """``[start, stop)`` of a topic's history."""

    start: Position = field(default_factory=Position.earliest)
    stop: Position = field(default_factory=Position.latest)

    @staticmethod
    def between(start: int | datetime | str, stop: int | datetime | str) -> ReplayRange:
        """A range from two times (epoch ms, datetimes or command-line strings)."""
        return ReplayRange(_as_position(start, "from"), _as_position(stop, "to"))

    @staticmethod
    def offsets(start: int | dict[int, int], stop: int | dict[int, int]) -> ReplayRange:
        return ReplayRange(Position.at_offset(start), Position.at_offset(stop))

    def from_offsets(self, offsets: dict[int, int]) -> ReplayRange:
        """This range with a ``savepoint`` start replaced by ``offsets`` (others unchanged)."""
        if self.start.kind != "savepoint":
            return self
        return ReplayRange(Position.at_offset(offsets), self.stop)

    def check(self, now_ms: int | None = None) -> None:
        """Errors that need no broker: order, future times."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        for name, pos in (("from", self.start), ("to", self.stop)):
            ts = pos.timestamp_ms
            if ts is not None and ts > now_ms + FUTURE_SKEW_MS:
                raise BadRange(
                    f"--{name} {pos.describe()} is in the future: a replay reads history "
                    "(run a live shadow for what is still to come)"
                )
        if self.stop.kind == "earliest":
            raise BadRange("--to earliest makes an empty range")
        if self.stop.kind == "savepoint":
            raise BadRange("--to savepoint: a savepoint's offsets can only start a range")

        if self.start.kind == "latest":
            raise BadRange("--from latest makes an empty range (use a live shadow instead)")
        a, b = self.start, self.stop
        if a.timestamp_ms is not None and b.timestamp_ms is not None:
            if a.timestamp_ms > b.timestamp_ms:
                raise BadRange(f"--from {a.describe()} is after --to {b.describe()}")
            if a.timestamp_ms == b.timestamp_ms:
                raise BadRange(f"--from and --to are both {a.describe()}: the range is empty")
        if a.offset is not None and b.offset is not None and a.offset > b.offset:
            raise BadRange(f"--from {a.describe()} is after --to {b.describe()}")

    def resolve(
        self,
        bootstrap: str,
        topic: str,
        now_ms: int | None = None,
        *,
        security: KafkaSecurity | None = None,
    ) -> ResolvedRange:
        """Explicit offsets per partition, checked against the topic's watermarks."""
        self.check(now_ms)
        if self.start.kind == "savepoint":
            raise BadRange("--from savepoint needs a savepoint to start from (--memory-from PATH)")
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(_client_config(bootstrap, security))
        try:
            parts = topic_partitions(consumer, topic)
            marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in parts}
            starts = self._offsets_at(consumer, topic, self.start, marks, "from")
            stops = self._offsets_at(consumer, topic, self.stop, marks, "to")
        finally:
            consumer.close()
        resolved: dict[int, tuple[int, int]] = {}
        for p in parts:
            start, stop = starts[p], stops[p]
            if start > stop:
                raise BadRange(
                    f"partition {p} of {topic}: --from {self.start.describe()} is offset "
                    f"{start}, after --to {self.stop.describe()} at offset {stop}"
                )
            resolved[p] = (start, stop)
        result = ResolvedRange(topic, resolved)
        if result.expected == 0:
            raise BadRange(
                f"no records of {topic} in [{self.start.describe()}, {self.stop.describe()})"
            )
        return result

    @staticmethod
    def _offsets_at(
        consumer: Any,
        topic: str,
        pos: Position,
        marks: dict[int, tuple[int, int]],
        name: str,
    ) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        if pos.kind == "earliest":
            return {p: low for p, (low, _high) in marks.items()}
        if pos.kind == "latest":
            return {p: high for p, (_low, high) in marks.items()}
        if pos.kind == "timestamp":
            assert pos.timestamp_ms is not None
            query = [TopicPartition(topic, p, pos.timestamp_ms) for p in marks]
            found = consumer.offsets_for_times(query, timeout=10)
            # -1: no record at or after the time; the range ends at the partition's end.
            return {
                tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1]
                for tp in found
            }
        unknown = sorted(set(pos.offsets) - set(marks))
        if unknown:
            raise BadRange(f"--{name}: {topic} has no partition {unknown[0]}")
        out: dict[int, int] = {}
        for p, (low, high) in marks.items():
            if pos.offsets:
                offset = pos.offsets.get(p, low if name == "from" else high)
            else:
                assert pos.offset is not None
                offset = pos.offset
            if offset > high:
                raise BadRange(
                    f"--{name} offset {offset} is beyond the end of partition {p} of {topic} "
                    f"(next offset {high})"
                )
            if offset < low:
                raise BadRange(
                    f"--{name} offset {offset} of partition {p} of {topic} is gone "
                    f"(retention; the earliest offset is {low})"
                )
            out[p] = offset
        return out


def _as_position(value: int | datetime | str, what: str) -> Position:
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
        return Position.at_time(int(when.timestamp() * 1000))
    if isinstance(value, int):
        return Position.at_time(value)
    return parse_position(value, what=f"--{what}")


def _client_config(bootstrap: str, security: KafkaSecurity | None = None) -> dict[str, Any]:
    return {
        **librdkafka_config(security),
        "bootstrap.servers": bootstrap,
        "group.id": f"sa-replay-probe-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    }


def topic_partitions(consumer: Any, topic: str) -> list[int]:
    """The partitions of ``topic``; :class:`MissingTopic` if the broker does not have it."""
    from confluent_kafka import KafkaError

    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    error = None if meta is None else meta.error
    if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        raise NotAuthorized(f"topic {topic!r}: the broker refused: {error.str()}")
    if meta is None or meta.error is not None or not meta.partitions:
        raise MissingTopic(f"topic {topic!r} does not exist on the broker")
    return sorted(meta.partitions)
