"""The SQL tally in a Kafka topic: counts of workers on any host reach the runner.

``streaming-agents sql --rest`` runs its jobs on a cluster whose workers do
not share the runner's disk, so their counts go to a topic (the target is
``kafka://BOOTSTRAP/TOPIC?run=ID``; :func:`prepare_topic` creates the topic,
one partition, deleted after a day).  A worker's :class:`KafkaWriter` sums
its outcomes in memory and appends one record (key: the run id; value: JSON
with the statement, line, kind, the good count and the failed counts by
reason) at most once a second while rows come, and at the job's end from the
counting function's ``close()``, waiting for the broker's acknowledgement.
A job cancelled by Ctrl-C may lose its last second of counts.

The workers' producer gets its client settings as the Kafka journal's do
(:func:`streaming_agents.journal.factory.kafka_properties`: the worker's
``$STREAMING_AGENTS_KAFKA_SECURITY`` and ``$STREAMING_AGENTS_KAFKA_PROPERTIES``,
never secrets in the job).  Records hold no event data: counts and reasons
(the first line of an error, at most 200 characters).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from streaming_agents.errors import ConfigError
from streaming_agents.sql.tally_base import Counted, Key

__all__ = ["KafkaWriter", "kafka_target", "prepare_topic", "read_counts"]

DEFAULT_TOPIC = "streaming-agents.sql-tally"
_RETENTION_MS = str(24 * 3600 * 1000)
_SEND_EVERY_S = 1.0
_TIMEOUT_S = 30.0
_CREATE_TIMEOUT_S = 10.0


def kafka_target(bootstrap: str, topic: str = DEFAULT_TOPIC, run: str | None = None) -> str:
    """The target URI of one run's counts on ``bootstrap`` (a fresh run id unless given)."""
    return f"kafka://{bootstrap}/{quote(topic)}?run={run or uuid.uuid4().hex}"


def _parse(target: str) -> tuple[str, str, str, dict[str, str]]:
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query))
    topic = parts.path.lstrip("/")
    if parts.scheme != "kafka" or not parts.netloc or not topic or not query.get("run"):
        raise ConfigError(f"SQL tally target {target!r}: expected kafka://BOOTSTRAP/TOPIC?run=ID")
    return parts.netloc, topic, query["run"], query


class KafkaWriter:
    """Sums one counting function's outcomes and appends them to the topic (see the module)."""

    def __init__(self, target: str, key: Key) -> None:
        from confluent_kafka import Producer

        from streaming_agents.connectors.broker import quiet_logger
        from streaming_agents.journal.factory import kafka_properties

        bootstrap, self._topic, self._run, query = _parse(target)
        conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": quiet_logger()}
        conf.update(kafka_properties(query))
        conf.update({"acks": "all", "enable.idempotence": True, "linger.ms": 50})
        self._producer = Producer(conf)
        self._key = key
        self._ok = 0
        self._failed: Counter[str] = Counter()
        self._sent_at = time.monotonic()

    def add(self, reason: str | None) -> None:
        if reason is None:
            self._ok += 1
        else:
            self._failed[reason] += 1
        if time.monotonic() - self._sent_at >= _SEND_EVERY_S:
            self._send()
            self._producer.poll(0)

    def close(self) -> None:
        self._send()
        left = self._producer.flush(_TIMEOUT_S)
        if left:
            from streaming_agents.errors import InfrastructureError

            raise InfrastructureError(f"SQL tally: {left} count records not acknowledged")

    def _send(self) -> None:
        self._sent_at = time.monotonic()
        if not self._ok and not self._failed:
            return
        value = {
            "run": self._run,
            "number": self._key.number,
            "line": self._key.line,
            "kind": self._key.kind,
            "ok": self._ok,
            "failed": dict(self._failed),
        }
        self._producer.produce(self._topic, json.dumps(value).encode(), key=self._run.encode())
        self._ok, self._failed = 0, Counter()


def prepare_topic(target: str, client: Mapping[str, Any]) -> None:
    """Create the target's topic unless it exists (``client``: the runner's own settings)."""
    from streaming_agents.connectors.broker import ensure_topics

    bootstrap, topic, _, _ = _parse(target)
    config = {"retention.ms": _RETENTION_MS, "cleanup.policy": "delete"}
    client = {**client, "bootstrap.servers": bootstrap}
    ensure_topics(client, [topic], 1, config=config, timeout_s=_CREATE_TIMEOUT_S)


def read_counts(target: str, client: Mapping[str, Any]) -> Iterator[Counted]:
    """The counts of the target's run: every record of the topic with its run id."""
    from streaming_agents.journal.kafka_io import new_consumer, read_partition, watermarks

    bootstrap, topic, run, _ = _parse(target)
    consumer = new_consumer(bootstrap, client)
    try:
        low, high = watermarks(consumer, topic, 0)
        for message in read_partition(consumer, topic, 0, low, high):
            if message.key() != run.encode():
                continue
            try:
                value = json.loads(message.value() or b"")
                key = Key(int(value["number"]), int(value["line"]), str(value["kind"]))
                failed = Counter({str(k): int(v) for k, v in value["failed"].items()})
                yield Counted(key, int(value["ok"]), failed)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # not one of ours
    finally:
        consumer.close()


class RemoteTally:
    """A ``--rest`` run's counts: where they go is decided when the first job needs it.

    The topic is on the broker the workers already use: the Kafka journal's,
    else the first Kafka JSON table's (:meth:`resolve`).  ``client`` are the
    runner's own Kafka settings (security), used to create and read the topic.
    """

    def __init__(self, client: Mapping[str, Any] | None = None) -> None:
        self.client = dict(client or {})
        self.run = uuid.uuid4().hex
        self.target: str | None = None
        self.refused: str | None = None
        """Why the broker could not hold the topic (then it is not asked again)."""

    @property
    def problem(self) -> str:
        """Why there is no target (for the runner's note)."""
        return self.refused or "the script reads no Kafka JSON table and has no kafka:// journal"

    def resolve(self, bootstraps: list[str]) -> str | None:
        """The target on the first of ``bootstraps`` (topic created on first call), or None."""
        if self.target is not None or self.refused is not None or not bootstraps:
            return self.target
        target = kafka_target(bootstraps[0], run=self.run)
        try:
            prepare_topic(target, self.client)
        except Exception as exc:  # noqa: BLE001 - no verdict rather than no job
            self.refused = f"cannot create topic {DEFAULT_TOPIC} on {bootstraps[0]}: {exc}"
            return None
        self.target = target
        return target
