"""The Kafka journal: one record of every paid answer, shared by every host.

Layout.  Results go to ``<topic>``, with ``partitions`` partitions (default
32, fixed when the topic is created).  A result for Flink key ``k`` goes to
partition ``blake2b(k) mod partitions`` (:func:`key_partition`), whatever
subtask or host wrote it; its record key is ``<scope>\\0<digest>`` and its
value the result's JSON (model output and usage; never a credential, which
``ModelSpec`` only names).  The request log goes to ``<topic>.requests``, one
partition, so its offsets are one order replays can page through.

Writes.  :meth:`KafkaJournal.append` produces with an idempotent producer and
``acks=all`` and returns when every in-sync replica has the record: the
operator acts on a result only after that.  The caller awaits a future
resolved from the delivery callback (a poll thread serves callbacks), so the
event loop never blocks on the broker.

Bounded reads.  A subtask never reads the topic's history.  On the first
lookup of a key whose journal partition it has not loaded, it reads that
partition once from ``anchor - lookback`` to the partition's end, where
``anchor`` is the time of the partition's newest record (so time the job
spent down does not count) and ``lookback_s`` covers a checkpoint interval,
a checkpoint's duration and the longest time an event is in progress
(``run_agent`` derives it from the checkpoint interval: 3 intervals, at least
5 minutes).  Entries that matter after a restore are those written since
the restored checkpoint by events not committed in it, all inside that
window.  Entries of other scopes are skipped.  Records are stamped by the
broker (``LogAppendTime``), so hosts with skewed clocks agree on the window.
What a subtask reads is therefore what its keys' partitions received in the
window: after a failure, a rescale or a move to another host, the new owner
of a key finds every entry it could need while reading only the recent tail
of the partitions its keys hash to.  Later lookups in a loaded partition are
answered from memory (entries this subtask wrote are added as written); a
key's entries are written only by the subtask that owns it.

Retention.  ``cleanup.policy=compact,delete``: compaction keeps one record per
(scope, digest) (a call paid twice in a race appears once), deletion drops
records older than ``retention.ms`` (default 7 days, far beyond any lookback).
The request log is ``delete`` only, same retention.  Both are set when the
backend creates a missing topic; an existing topic is used as it is.

Reading a production journal.  A replay or a time-travel reconstruction
opens the journal ``read_only`` (nothing is produced, no topic is created: a
missing topic is a configuration error) with ``since_ms``: a partition is
then read from that time (``0``: everything retained) instead of the recent
tail, since the calls it looks for may be older than any lookback.  It still
reads only the partitions its keys hash to, once each.

Memory.  Entries held in memory older than the lookback are dropped as new
ones arrive, so a long-running subtask holds about one window of entries.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer

from streaming_agents.agent import LLMResult
from streaming_agents.errors import ConfigError
from streaming_agents.journal.base import JournalScope, RecordedRequest, key_partition
from streaming_agents.journal.kafka_io import (
    AckingProducer,
    ensure_topic,
    new_consumer,
    offset_for_time,
    read_partition,
    require_topics,
    watermarks,
)

__all__ = ["DEFAULT_LOOKBACK_S", "DEFAULT_PARTITIONS", "KafkaJournal", "LoadStats"]

DEFAULT_PARTITIONS = 32
DEFAULT_LOOKBACK_S = 300.0
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000


class LoadStats:
    """What the journal read from Kafka: partitions loaded and records scanned."""

    def __init__(self) -> None:
        self.partitions_loaded = 0
        self.records_read = 0


class KafkaJournal:
    """Results and request log in Kafka topics; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        scope: JournalScope | None = None,
        partitions: int = DEFAULT_PARTITIONS,
        lookback_s: float = DEFAULT_LOOKBACK_S,
        retention_ms: int = DEFAULT_RETENTION_MS,
        properties: Mapping[str, Any] | None = None,
        read_only: bool = False,
        since_ms: int | None = None,
    ) -> None:
        if partitions < 1 or lookback_s <= 0 or retention_ms <= 0:
            raise ConfigError("journal partitions, lookback and retention must be positive")
        self.bootstrap, self.topic, self.scope = bootstrap, topic, scope
        self.requests_topic = f"{topic}.requests"
        self.partitions, self.lookback_s = partitions, lookback_s
        self.retention_ms = retention_ms
        self.properties = dict(properties or {})
        self.read_only, self.since_ms = read_only, since_ms
        self.stats = LoadStats()
        self._prefix = b"" if scope is None else scope.match_prefix().encode()
        self._entries: OrderedDict[str, tuple[float, LLMResult]] = OrderedDict()
        self._loaded: dict[int, asyncio.Future[None]] = {}
        self._io_lock = threading.Lock()
        self._producer: AckingProducer | None = None
        self._consumer: Consumer | None = None
        self._ready = False

    # --- set-up -----------------------------------------------------------------

    def _setup(self) -> None:
        with self._io_lock:
            if self._ready:
                return
            if self.read_only:
                require_topics(self.bootstrap, [self.topic, self.requests_topic], self.properties)
                self._consumer = new_consumer(self.bootstrap, self.properties)
                self._ready = True
                return
            ensure_topic(self.bootstrap, self.topic, self.partitions, self._topic_config(True),
                         self.properties)  # fmt: skip
            ensure_topic(self.bootstrap, self.requests_topic, 1, self._topic_config(False),
                         self.properties)  # fmt: skip
            self._producer = AckingProducer(self.bootstrap, self.properties)
            self._consumer = new_consumer(self.bootstrap, self.properties)
            self._ready = True

    def _topic_config(self, compacted: bool) -> dict[str, str]:
        return {
            "cleanup.policy": "compact,delete" if compacted else "delete",
            "retention.ms": str(self.retention_ms),
            "message.timestamp.type": "LogAppendTime",
        }

    def _producer_ready(self) -> AckingProducer:
        if self.read_only:
            raise ConfigError(f"journal {self.topic} is open read-only (a production journal)")
        if not self._ready:
            self._setup()
        assert self._producer is not None
        return self._producer

    # --- the result cache -------------------------------------------------------

    async def lookup(self, key: str, digest: str) -> LLMResult | None:
        found = self._entries.get(digest)
        if found is not None:
            return found[1]
        partition = key_partition(key, self.partitions)
        loading = self._loaded.get(partition)
        if loading is None:
            loading = asyncio.ensure_future(self._load_into_memory(partition))
            self._loaded[partition] = loading
        try:
            await asyncio.shield(loading)
        except Exception:
            self._loaded.pop(partition, None)  # try again on the next lookup
            raise
        found = self._entries.get(digest)
        return None if found is None else found[1]

    async def append(self, key: str, digest: str, result: LLMResult) -> None:
        producer = self._producer_ready()
        await producer.send(
            self.topic,
            result.model_dump_json().encode(),
            key=self._prefix + digest.encode(),
            partition=key_partition(key, self.partitions),
        )
        self._remember(digest, result)

    def get(self, digest: str) -> LLMResult | None:
        """An entry already in memory (written or loaded here); never reads Kafka."""
        found = self._entries.get(digest)
        return None if found is None else found[1]

    def _remember(self, digest: str, result: LLMResult) -> None:
        now = time.monotonic()
        self._entries[digest] = (now, result)
        self._entries.move_to_end(digest)
        horizon = now - self.lookback_s
        while self._entries:
            first = next(iter(self._entries.values()))
            if first[0] >= horizon:
                break
            self._entries.popitem(last=False)

    async def _load_into_memory(self, partition: int) -> None:
        for digest, result in await asyncio.to_thread(self._load, partition):
            if digest not in self._entries:
                self._entries[digest] = (time.monotonic(), result)

    def _load(self, partition: int) -> list[tuple[str, LLMResult]]:
        """Read the recent tail of one partition (on a worker thread)."""
        self._setup()
        with self._io_lock:
            consumer = self._consumer
            assert consumer is not None
            low, high = watermarks(consumer, self.topic, partition)
            if high <= low:
                return []
            start = self._start_offset(consumer, partition, high)
            loaded: list[tuple[str, LLMResult]] = []
            for msg in read_partition(consumer, self.topic, partition, max(start, low), high):
                self.stats.records_read += 1
                record_key, value = msg.key() or b"", msg.value()
                if value is None or not record_key.startswith(self._prefix):
                    continue
                digest = record_key.rsplit(b"\0", 1)[-1].decode()
                loaded.append((digest, LLMResult.model_validate_json(value)))
            self.stats.partitions_loaded += 1
        return loaded

    def _start_offset(self, consumer: Consumer, partition: int, high: int) -> int:
        """Where a load starts: ``since_ms``, else the lookback before the newest record."""
        if self.since_ms is not None:
            return offset_for_time(consumer, self.topic, partition, self.since_ms)
        newest = next(read_partition(consumer, self.topic, partition, high - 1, high), None)
        anchor_ms = newest.timestamp()[1] if newest is not None else int(time.time() * 1000)
        return offset_for_time(
            consumer, self.topic, partition, anchor_ms - int(self.lookback_s * 1000)
        )

    def close(self) -> None:
        with self._io_lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            self._ready = False

    # --- the request log --------------------------------------------------------

    def record_request(
        self,
        *,
        kind: str,
        agent: str,
        version: str,
        key: str,
        turn: int,
        digest: str,
        body: str,
        event: str | None = None,
    ) -> None:
        """Append a request row (not awaited: a debugging record, flushed on close)."""
        row = {"kind": kind, "agent": agent, "version": version, "key": key, "turn": int(turn),
               "digest": digest, "body": body, "event": event, "ts": time.time(),
               "scope": "" if self.scope is None else self.scope.label()}  # fmt: skip
        self._producer_ready().send_nowait(self.requests_topic, json.dumps(row).encode())

    def recorded_requests(
        self,
        *,
        agent: str | None = None,
        key: str | None = None,
        turn: int | None = None,
        kind: str | None = None,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> list[RecordedRequest]:
        """Request rows, oldest first; ``seq`` is the record's offset + 1."""
        self._setup()
        if self._producer is not None:
            self._producer.flush()
        wanted = {"agent": agent, "key": key, "turn": turn, "kind": kind}
        rows: list[RecordedRequest] = []
        seen: set[tuple[Any, ...]] = set()
        with self._io_lock:
            consumer = self._consumer
            assert consumer is not None
            low, high = watermarks(consumer, self.requests_topic, 0)
            end = high if upto_seq is None else min(high, upto_seq)
            for msg in read_partition(consumer, self.requests_topic, 0, max(low, after_seq), end):
                row = json.loads(msg.value() or b"{}")
                if any(v is not None and row.get(k) != v for k, v in wanted.items()):
                    continue
                if not self._in_scope(str(row.get("scope", ""))):
                    continue
                unique = (row["kind"], row["agent"], row["key"], row["turn"], row["digest"])
                if unique not in seen:
                    seen.add(unique)
                    rows.append(RecordedRequest(seq=int(msg.offset() or 0) + 1, **row))
        return rows

    def _in_scope(self, label: str) -> bool:
        """Whether a request row recorded under ``label`` is this journal's to list."""
        if self.scope is None:
            return True
        prefix = self.scope.match_prefix()
        return (label + "\0").startswith(prefix)

    def last_request_seq(self) -> int:
        self._setup()
        if self._producer is not None:
            self._producer.flush()
        with self._io_lock:
            assert self._consumer is not None
            return watermarks(self._consumer, self.requests_topic, 0)[1]

    def __getstate__(self) -> dict[str, object]:
        return {"bootstrap": self.bootstrap, "topic": self.topic, "scope": self.scope,
                "partitions": self.partitions, "lookback_s": self.lookback_s,
                "retention_ms": self.retention_ms, "properties": self.properties,
                "read_only": self.read_only, "since_ms": self.since_ms}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.pop("bootstrap"), state.pop("topic"), **state)  # type: ignore[misc]
