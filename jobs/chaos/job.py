"""The chaos job: Kafka events -> key_by key -> echo agent -> exactly-once Kafka.

Input records are ``{"k": key, "seq": n}`` with ``n`` counting from 0 per key.
The agent keeps a conversation (``ConversationMemory``, RocksDB keyed state)
and emits one ``AgentOutput`` per event, whose ``turn`` is the number of turns
the key's memory has seen: ``seq + 1`` when memory was neither lost nor
applied twice.  Outputs and dead letters go to exactly-once Kafka sinks; the
audit log (``--audit``) through the library's audit sink.

Submitted as a user would: ``flink run -py jobs/chaos/job.py --bootstrap ...``
(see ``streaming_agents.chaos``).  Secrets never travel as arguments (Flink's
client logs its program arguments): the API key is read by the workers from
the environment variable ``--api-key-env``; a Kafka SASL password, if any, is
read by this script from the environment variable ``--kafka-password-env``.
``--kafka-security FILE`` is the client-security setting of the source and
sinks (a ``--command-config``-style file holding references, never a
password: each Kafka client resolves them where it runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from streaming_agents import (
    Agent,
    Budget,
    ConversationMemory,
    MemoryPolicy,
    ModelSpec,
    SqliteJournal,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

AGENT_NAME = "chaos-echo"
AGENT_UID = "agent-chaos-echo"


def chaos_agent(
    api_base: str,
    api_key_env: str,
    timeout_s: float,
    num_retries: int,
    budget: Budget | None = None,
) -> Agent[Any]:
    """The echo agent: prompt ``"<k>#<seq>"``, the last 4 turns kept in memory."""
    model = ModelSpec(
        model="openai/fake-model",
        api_base=api_base,
        api_key_env=api_key_env,
        timeout_s=timeout_s,
        num_retries=num_retries,
    )
    return Agent(
        name=AGENT_NAME,
        version="1",
        model=model,
        prompt="{k}#{seq}",
        memory=ConversationMemory,
        policy=MemoryPolicy(max_turns=4),
        budget=budget,
    )


def kafka_properties(password_env: str | None) -> dict[str, str]:
    """Client properties carrying a SASL/PLAIN password read from ``password_env``.

    ``security.protocol`` stays ``PLAINTEXT`` (the local broker has no SASL
    listener), so Kafka clients hold the JAAS config without using it.
    """
    if not password_env:
        return {}
    password = os.environ.get(password_env)
    if password is None:
        raise SystemExit(f"environment variable {password_env} (Kafka password) is not set")
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="chaos" password="{password}";'
    )
    return {"security.protocol": "PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.jaas.config": jaas}


def _journal(setting: str) -> Any:
    """A URI (``kafka://...``, ``sqlite://...``) is resolved on the workers; a path is a file."""
    return setting if "://" in setting else SqliteJournal(setting)


def main(argv: list[str] | None = None) -> None:
    from streaming_agents.connectors.security import load_security
    from streaming_agents.pipeline import AgentPipeline
    from streaming_agents.runtime.environment import local_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--in", dest="in_topic", required=True)
    parser.add_argument("--out", dest="out_topic", required=True)
    parser.add_argument("--dlq", required=True, help="dead-letter topic")
    parser.add_argument("--audit", default=None, help="audit topic (off when absent)")
    parser.add_argument("--api-base", required=True)
    parser.add_argument("--api-key-env", default="FAKE_LLM_API_KEY")
    parser.add_argument("--kafka-password-env", default=None)
    parser.add_argument("--kafka-security", default=None, help="client-security properties file")
    parser.add_argument("--journal", required=True, help="SQLite journal file or journal URI")
    parser.add_argument("--txn-prefix", required=True)
    parser.add_argument("--group-id", default="chaos")
    parser.add_argument("--checkpoint-ms", type=int, default=3000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=1.0, help="ModelSpec.timeout_s")
    parser.add_argument("--num-retries", type=int, default=6)
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--job-name", default="chaos-agent")
    parser.add_argument("--budget-tokens", type=int, default=None, help="tokens per hour")
    parser.add_argument("--reserve-tokens", type=int, default=None, help="reserved per call")
    parser.add_argument("--ledger", default=None, help="budget ledger URI")
    args = parser.parse_args(argv)
    budget = None
    if args.budget_tokens:  # events over it are dead-lettered "over budget"
        budget = Budget(max_tokens=args.budget_tokens, window_s=3600, on_exceeded="dead_letter",
                        reserve_tokens=args.reserve_tokens, ledger=args.ledger)  # fmt: skip

    env = local_env(
        parallelism=args.parallelism,
        checkpoint_interval_ms=args.checkpoint_ms,
        state_backend="rocksdb",
        # The cluster's strategy gives up after 3 restarts; a chaos run has more.
        extra_config={
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "1000",
            "restart-strategy.fixed-delay.delay": "1 s",
        },
    )
    if args.kafka_security and args.kafka_password_env:
        parser.error("--kafka-security and --kafka-password-env exclude each other")
    props = kafka_properties(args.kafka_password_env)
    security = load_security(args.kafka_security) if args.kafka_security else None
    agent = chaos_agent(args.api_base, args.api_key_env, args.timeout_s, args.num_retries, budget)
    streams = (
        AgentPipeline.from_kafka(
            env,
            args.bootstrap,
            args.in_topic,
            args.group_id,
            properties=props,
            security=security,
            name="events",
        )
        .key_by("k")
        .apply(agent, capacity=args.capacity, journal=_journal(args.journal), uid=AGENT_UID)
    )
    streams.to_kafka(
        args.bootstrap,
        outputs=args.out_topic,
        dead_letters=args.dlq,
        audit=args.audit,
        transactional_id_prefix=args.txn_prefix,
        properties=props,
        security=security,
    )
    env.execute(args.job_name)


if __name__ == "__main__":
    main()
