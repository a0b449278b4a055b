"""An echo agent on Kafka: events -> key_by k -> run_agent -> Kafka, exactly once.

Input records ``{"k": key, "seq": n}``; the agent (prompt ``"{k}#{seq}"``) asks
the fake LLM, whose echo reply ``echo[n=<messages>]: <prompt>`` shows how much
conversation memory was sent.  Each output is an ``AgentOutput`` JSON line.

``--memory-version 1`` keeps :class:`ConversationMemory` and emits the reply;
``--memory-version 2`` keeps :class:`MoodMemory` (``SCHEMA_VERSION = 2``, one more
field, ``migrate`` upgrading v1 documents) and emits ``{"reply", "mood",
"schema_version"}`` so the output shows whether a key's memory was migrated
(``mood == "migrated"``) or started fresh (``mood == "new"``).  Both versions
use the same agent name, hence the same operator uid: v2 reads v1's savepoint.

In-process: ``build(local_env(...), ...)`` then ``env.execute()``.
On a cluster: ``flink run -py tests/jobs/agent_job.py --bootstrap ... --in ... --out ...
--api-base ... --journal ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, ClassVar

from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import StreamExecutionEnvironment

from streaming_agents import (
    Agent,
    ConversationMemory,
    LLMResult,
    MemoryPolicy,
    ModelSpec,
    SqliteJournal,
    run_agent,
)
from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.runtime.environment import local_env

AGENT_NAME = "echo-savepoint"
AGENT_UID = "agent-echo-savepoint"
API_KEY_ENV = "FAKE_LLM_API_KEY"


class MoodMemory(ConversationMemory):
    """Schema 2 of the echo agent's memory: the conversation plus a ``mood``."""

    SCHEMA_VERSION: ClassVar[int] = 2
    schema_version: int = 2
    mood: str = "new"

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        if from_version == 1:
            return {**data, "mood": "migrated"}
        return super().migrate(data, from_version)


def reduce_v2(
    event: dict[str, Any], memory: MoodMemory, result: LLMResult
) -> tuple[MoodMemory, list[Any]]:
    """Remember the turn, and emit the reply with what the memory says about itself."""
    prompt = f"{event['k']}#{event['seq']}"
    new = memory.with_turn(prompt, result.content)
    return new, [{"reply": result.content, "mood": new.mood, "schema_version": new.schema_version}]


def echo_agent(api_base: str, memory_version: int) -> Agent[Any]:
    model = ModelSpec(model="openai/fake-model", api_base=api_base, api_key_env=API_KEY_ENV)
    common: dict[str, Any] = {
        "name": AGENT_NAME,
        "model": model,
        "prompt": "{k}#{seq}",
        "policy": MemoryPolicy(max_turns=20),
    }
    if memory_version == 1:
        return Agent(version="1", memory=ConversationMemory, **common)
    if memory_version == 2:
        return Agent(version="2", memory=MoodMemory, reduce_fn=reduce_v2, **common)
    raise ValueError(f"unknown memory version {memory_version}")


def _key_of(value: str) -> str:
    try:
        parsed = json.loads(value)
    except ValueError:
        return "?"
    return str(parsed.get("k", "?")) if isinstance(parsed, dict) else "?"


def build(
    env: StreamExecutionEnvironment,
    *,
    bootstrap: str,
    in_topic: str,
    out_topic: str,
    api_base: str,
    journal: str,
    memory_version: int = 1,
    group_id: str = "agent-job",
    transactional_id_prefix: str | None = None,
    bounded: bool = False,
) -> None:
    """Add the pipeline to ``env`` (call ``env.execute()`` afterwards)."""
    if __name__ != "__main__":
        # Ship this module's classes and functions by value: workers cannot import `tests`.
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    source = kafka_source(bootstrap, in_topic, group_id, bounded=bounded)
    sink = exactly_once_sink(bootstrap, out_topic, transactional_id_prefix or f"agent-{out_topic}")
    keyed = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
        .uid("events-source")
        .key_by(_key_of, key_type=Types.STRING())
    )
    agent = echo_agent(api_base, memory_version)
    out = run_agent(keyed, agent, journal=SqliteJournal(journal), uid=AGENT_UID)
    out.sink_to(sink).uid("agent-sink").name("agent-sink")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--in", dest="in_topic", required=True)
    parser.add_argument("--out", dest="out_topic", required=True)
    parser.add_argument("--api-base", required=True, help="the fake LLM's base URL")
    parser.add_argument("--journal", required=True, help="SQLite journal file")
    parser.add_argument("--memory-version", type=int, choices=[1, 2], default=1)
    parser.add_argument("--group-id", default="agent-job")
    parser.add_argument("--txn-prefix", default=None)
    parser.add_argument("--bounded", action="store_true")
    parser.add_argument("--checkpoint-ms", type=int, default=2000)
    parser.add_argument("--state-backend", choices=["hashmap", "rocksdb"], default="rocksdb")
    parser.add_argument("--job-name", default="agent-job")
    args = parser.parse_args(argv)
    env = local_env(checkpoint_interval_ms=args.checkpoint_ms, state_backend=args.state_backend)
    build(
        env,
        bootstrap=args.bootstrap,
        in_topic=args.in_topic,
        out_topic=args.out_topic,
        api_base=args.api_base,
        journal=args.journal,
        memory_version=args.memory_version,
        group_id=args.group_id,
        transactional_id_prefix=args.txn_prefix,
        bounded=args.bounded,
    )
    env.execute(args.job_name)


if __name__ == "__main__":
    main()
