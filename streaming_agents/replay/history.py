"""Time travel: one key's memory as it was at a past decision, from the input and the journal.

Production keeps a key's memory in Flink state, overwriting it at every
decision.  Every decision is nevertheless reproducible: the agent's
``step`` and ``reduce`` are pure, the key's events are in the input topic,
and every answer production acted on -- LLM replies and tool results -- is
in the journal, recorded before it was used.  :func:`reconstruct` reads the
key's events up to a point (an input offset or a time), then runs the
agent's own event processing (:class:`~streaming_agents.runtime.processing.
EventProcessor`: step, tool loop, repairs, reduce, memory policy) in this
process on each event in order, from empty memory, with an LLM client that
never calls anything: every request is answered from the journal.

Zero calls, by construction: a request or tool call the journal cannot
answer stops the reconstruction (:class:`JournalGap`, with the history up to
there); nothing is ever sent to a model and no tool is ever run.  The
production journal is opened read-only (:func:`~streaming_agents.journal.
factory.open_reader`), scoped to production's job, agent and version.

What it assumes: the agent (``--agent``) is the version production ran;
production keyed events by ``key_field`` and saw a key's events in the
order of their input offsets (one partition per key, as keyed producers
write them; events of several partitions or topics are merged by record
time); no memory TTL expired in between.  Entries older than the
journal's retention are gone, which shows as a gap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streaming_agents.agent import Agent, LLMRequest, LLMResult
from streaming_agents.errors import ConfigError, RuntimeFailure
from streaming_agents.journal.base import ResultCache
from streaming_agents.journal.factory import open_reader, request_log
from streaming_agents.memory import Memory
from streaming_agents.runtime.audit import EventTrace
from streaming_agents.runtime.events import Limits, Rejected, decode
from streaming_agents.runtime.keys import key_of, split_path
from streaming_agents.runtime.processing import EventProcessor
from streaming_agents.runtime.work import KeyChain

if TYPE_CHECKING:
    from streaming_agents.connectors.security import KafkaSecurity
    from streaming_agents.replay.topics import TopicRecord

__all__ = ["Decision", "History", "JournalGap", "KeyEvent", "reconstruct"]


class JournalGap(RuntimeFailure):
    """A request or tool call of the key that the journal cannot answer."""


@dataclass(frozen=True)
class KeyEvent:
    """One input record of the key: where it was and what it said."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    raw: bytes | None


@dataclass
class Decision:
    """What one event did: the calls it made (answered from the journal) and its outcome."""

    event: KeyEvent
    calls: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "output"
    outputs: list[Any] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ev = self.event
        return {
            "topic": ev.topic,
            "partition": ev.partition,
            "offset": ev.offset,
            "timestamp_ms": ev.timestamp_ms,
            "event": _event_json(ev.raw),
            "calls": self.calls,
            "outcome": self.outcome,
            "outputs": self.outputs,
            "memory_after": self.memory,
        }


@dataclass
class History:
    """The key's decisions up to the point asked for, and its memory there."""

    agent: str
    version: str
    key: str
    decisions: list[Decision]
    memory: dict[str, Any]
    gap: str | None = None

    @property
    def llm_calls_answered(self) -> int:
        return sum(1 for d in self.decisions for c in d.calls if c["kind"] == "llm")

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": self.version,
            "key": self.key,
            "decisions": [d.to_dict() for d in self.decisions],
            "memory": self.memory,
            "llm_calls_made": 0,
            "llm_calls_answered_from_journal": self.llm_calls_answered,
            "gap": self.gap,
        }


def _event_json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw[:500].decode("utf-8", "replace")


async def _never_call(request: LLMRequest) -> LLMResult:
    raise JournalGap("time travel never calls an LLM")


class _JournalOnly(EventProcessor):
    """The agent's event processing with every answer taken from the journal."""

    def __init__(self, agent: Agent[Any], reader: ResultCache) -> None:
        # No budget: nothing is paid, so no ledger is opened or charged.
        super().__init__(dataclasses.replace(agent, budget=None), _never_call, reader)
        self.calls: list[dict[str, Any]] = []
        self.gap: str | None = None

    async def _lookup(self, chain: KeyChain, digest: str) -> LLMResult | None:
        try:
            found = await self._journal.lookup(chain.key, digest)
        except Exception as exc:
            self.gap = f"the journal could not be read: {type(exc).__name__}: {exc}"
            raise JournalGap(self.gap) from exc
        if found is None:
            self.gap = f"the journal has no answer for request {digest[:16]}"
            raise JournalGap(self.gap)
        return found

    async def _answer(self, chain: KeyChain, request: LLMRequest, trace: EventTrace) -> LLMResult:
        result = await super()._answer(chain, request, trace)
        self.calls.append(
            {
                "kind": "llm",
                "request": json.loads(request.canonical()),
                "reply": result.content,
                "tool_calls": list(result.tool_calls),
            }
        )
        return result

    async def _run_tool(
        self, chain: KeyChain, request: LLMRequest, call: dict[str, Any], trace: EventTrace
    ) -> str:
        output = await super()._run_tool(chain, request, call, trace)
        self.calls.append({"kind": "tool", "call": call, "result": output})
        return output


def _select(
    records: Sequence[tuple[str, TopicRecord]],
    key: str,
    key_field: str,
    at_offset: int | None,
    at_time_ms: int | None,
    limits: Limits,
) -> list[KeyEvent]:
    """The key's records at or before the point, in the order production saw them."""
    path = split_path(key_field)
    chosen = []
    for topic, rec in records:
        if at_offset is not None and rec.offset > at_offset:
            continue
        if at_time_ms is not None and rec.timestamp_ms > at_time_ms:
            continue
        envelope = decode(rec.value, None, limits)
        if isinstance(envelope, Rejected):
            continue
        if key_of(envelope["e"], path, limits.max_key_chars) == key:
            chosen.append(KeyEvent(topic, rec.partition, rec.offset, rec.timestamp_ms, rec.value))
    # Offset order within a partition (what production saw), partitions merged by time.
    groups: dict[tuple[str, int], list[KeyEvent]] = {}
    for ev in chosen:
        groups.setdefault((ev.topic, ev.partition), []).append(ev)
    ordered = [sorted(g, key=lambda e: e.offset) for _, g in sorted(groups.items())]
    return list(heapq.merge(*ordered, key=lambda e: e.timestamp_ms))


def _outcome(completion: Any) -> tuple[str, list[Any]]:
    if completion.dead_letter is not None:
        reason = json.loads(completion.dead_letter).get("reason", "?")
        return f"dead letter: {reason}", []
    return "output", [json.loads(line).get("output") for line in completion.outputs]


async def _run(agent: Agent[Any], reader: ResultCache, key: str, events: list[KeyEvent]) -> History:
    processor = _JournalOnly(agent, reader)
    memory: Memory = agent.memory.load(None)
    history = History(agent.name, agent.version, key, [], json.loads(memory.dump()))
    try:
        for event in events:
            source = {"topic": event.topic, "partition": event.partition, "offset": event.offset,
                      "timestamp_ms": event.timestamp_ms}  # fmt: skip
            envelope = decode(event.raw, source, Limits())
            assert not isinstance(envelope, Rejected)  # _select kept decodable records only
            chain = KeyChain(key=key, memory=memory, todo=deque([envelope]))
            processor.calls = []
            completion, new_memory = await processor.process_safely(chain, envelope, memory)
            if processor.gap is not None:
                history.gap = f"offset {event.offset} of {event.topic}: {processor.gap}"
                break
            outcome, outputs = _outcome(completion)
            memory = new_memory
            decision = Decision(event, processor.calls, outcome, outputs, json.loads(memory.dump()))
            history.decisions.append(decision)
            history.memory = decision.memory
    finally:
        processor.close()
    return history


def reconstruct(
    agent: Agent[Any],
    *,
    bootstrap: str,
    topics: Sequence[str],
    key: str,
    journal: str,
    key_field: str = "key",
    at_offset: int | None = None,
    at_time_ms: int | None = None,
    security: KafkaSecurity | None = None,
) -> History:
    """``key``'s memory after its last event at or before the point (see the module doc).

    ``journal`` is production's journal URI (``scope=JOB`` in it names
    production's job); ``at_offset`` bounds the input offsets, ``at_time_ms``
    the record timestamps; neither: every event so far.  A gap in the
    journal ends the history early (``History.gap``); nothing is ever called.
    """
    from streaming_agents.replay.topics import read_topic

    if at_offset is not None and at_offset < 0:
        raise ConfigError(f"--at-offset must be 0 or more, got {at_offset}")
    records = [
        (topic, rec) for topic in topics for rec in read_topic(bootstrap, topic, security=security)
    ]
    events = _select(records, key, key_field, at_offset, at_time_ms, Limits())
    if not events:
        raise ConfigError(f"no event of key {key!r} (field {key_field!r}) at or before that point")
    from streaming_agents.connectors.security import librdkafka_config

    props = librdkafka_config(security) if security is not None else None
    reader = open_reader(journal, agent=agent.name, version=agent.version, properties=props)
    log = request_log(reader)
    if log is not None:  # a missing file or topic is a user error, before any event
        try:
            log.last_request_seq()
        except ConfigError:
            reader.close()
            raise
    return asyncio.run(_run(agent, reader, key, events))
