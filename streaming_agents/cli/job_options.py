"""Options and steps shared by ``run``, ``submit`` and the ``flink run`` entry point.

A job is built the same way wherever it runs: :func:`build_job_env` makes the
environment (mini-cluster in this process, or the cluster's context
environment under ``flink run``), resolves the model, topics and journal, and
calls the job's ``build``.  Bad options are user errors (:class:`ConfigError`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from streaming_agents.connectors.security import (
    KAFKA_SECURITY_ENV,
    KafkaSecurity,
    librdkafka_config,
    load_security,
)
from streaming_agents.errors import ConfigError

__all__ = [
    "BOOTSTRAP_ENV",
    "FAKE_KEY_ENV",
    "MODEL_ENV",
    "SUBMIT_CHECKPOINT_MS",
    "add_job_arguments",
    "add_security_argument",
    "add_topic_arguments",
    "bootstrap_of",
    "build_job_env",
    "check_model_env",
    "check_numbers",
    "model_spec",
    "prepare_topics",
    "progress",
    "root_cause",
    "security_entry_args",
    "security_of",
    "topic_overrides",
]

BOOTSTRAP_ENV = "STREAMING_AGENTS_KAFKA_BOOTSTRAP"
MODEL_ENV = "STREAMING_AGENTS_MODEL"
"""Names a litellm model (e.g. ``openai/gpt-4o-mini``) when ``--model`` is not given."""
FAKE_KEY_ENV = "STREAMING_AGENTS_FAKE_API_KEY"
"""The (dummy) API key jobs send to the fake LLM."""
SUBMIT_CHECKPOINT_MS = 5000
"""Checkpoint interval of submitted jobs unless ``--checkpoint-ms`` is given: output of the
exactly-once sinks becomes visible at each checkpoint."""


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run``, ``submit`` and the ``flink run`` entry point."""
    parser.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (default: ${BOOTSTRAP_ENV}, else localhost:9092)",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help=f"litellm model name, e.g. openai/gpt-4o-mini (default: ${MODEL_ENV})",
    )
    parser.add_argument("--api-base", default=None, metavar="URL", help="the model's base URL")
    parser.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="environment variable holding the API key, read by the workers "
        "(default: the provider's usual one, e.g. OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help="use topic NAME for the job's topic role ROLE (repeatable; "
        "`streaming-agents agents` lists the defaults)",
    )
    parser.add_argument(
        "--bounded", action="store_true", help="stop at the inputs' end offsets at start"
    )
    parser.add_argument(
        "--checkpoint-ms",
        type=int,
        default=None,
        metavar="MS",
        help=f"checkpoint interval (default 2000 for run, {SUBMIT_CHECKPOINT_MS} for submit)",
    )
    parser.add_argument(
        "--checkpoint-dir", default=None, metavar="DIR", help="where checkpoints are kept"
    )
    parser.add_argument(
        "--state-backend",
        choices=["hashmap", "rocksdb"],
        default=None,
        help="state backend (default: hashmap for run, rocksdb for submit)",
    )
    parser.add_argument("--parallelism", type=int, default=None, metavar="N")
    parser.add_argument("--group-id", default=None, help="consumer group id prefix")
    parser.add_argument(
        "--journal",
        default=None,
        metavar="URI",
        help="the LLM journal, resolved on each worker: kafka://HOST:PORT/TOPIC (clusters), "
        "sqlite:///PATH (a file or folder), or none; entries are scoped to the job's name "
        "(default: the workers' $STREAMING_AGENTS_JOURNAL, else SQLite in their state folder)",
    )
    parser.add_argument(
        "--journal-dir",
        default=None,
        metavar="DIR",
        help="deprecated: the same as --journal sqlite:///DIR",
    )
    parser.add_argument(
        "--capacity", type=int, default=100, metavar="N", help="LLM calls in flight per subtask"
    )
    parser.add_argument("--job-name", default=None, help="Flink job name (default: the job's)")
    add_security_argument(parser)


def add_security_argument(parser: argparse.ArgumentParser) -> None:
    """``--kafka-security FILE``: the client-security setting of every Kafka client."""
    parser.add_argument(
        "--kafka-security",
        default=None,
        metavar="FILE",
        help="Kafka client-security properties (as Kafka's --command-config: "
        "security.protocol, sasl.mechanism, sasl.username, sasl.password=${env:VAR} or "
        f"${{file:/path:key}}, ssl.ca.location); default: ${KAFKA_SECURITY_ENV}, else PLAINTEXT",
    )
    # What `submit` hands to the `flink run` entry point: the setting itself (references
    # only, never a password), so the job gets it wherever the entry point runs.
    parser.add_argument("--kafka-security-properties", default=None, help=argparse.SUPPRESS)


def security_of(args: argparse.Namespace) -> KafkaSecurity | None:
    """The setting: ``--kafka-security FILE``, else ``$STREAMING_AGENTS_KAFKA_SECURITY``, else None
    (PLAINTEXT); under ``flink run``, the properties ``submit`` shipped."""
    shipped = getattr(args, "kafka_security_properties", None)
    if shipped:
        try:
            props = json.loads(shipped)
        except ValueError:
            raise ConfigError("--kafka-security-properties is not a JSON object") from None
        if not isinstance(props, dict):
            raise ConfigError("--kafka-security-properties is not a JSON object")
        return KafkaSecurity.from_properties({str(k): str(v) for k, v in props.items()})
    path = getattr(args, "kafka_security", None) or os.environ.get(KAFKA_SECURITY_ENV)
    if not path:
        return None
    if not Path(path).is_file():
        raise ConfigError(f"--kafka-security {path}: no such file")
    return load_security(path)


def security_entry_args(args: argparse.Namespace) -> list[str]:
    """The entry point's arguments carrying the setting (its properties: references only)."""
    security = security_of(args)
    if security is None:
        return []
    return ["--kafka-security-properties", json.dumps(security.to_properties())]


def add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    """``--create-topics`` and ``--sample N [--seed S]`` (see :func:`prepare_topics`)."""
    parser.add_argument(
        "--sample", type=int, default=None, metavar="N", help="write N sample records"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the sample records")
    parser.add_argument(
        "--create-topics", action="store_true", help="create the job's topics if missing"
    )


def topic_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        role, sep, name = pair.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise ConfigError(f"--topic needs ROLE=NAME, got {pair!r}")
        overrides[role.strip()] = name.strip()
    return overrides


def bootstrap_of(args: argparse.Namespace) -> str:
    return str(args.bootstrap or os.environ.get(BOOTSTRAP_ENV) or "localhost:9092")


def check_numbers(args: argparse.Namespace) -> None:
    if args.capacity < 1:
        raise ConfigError(f"--capacity must be at least 1, got {args.capacity}")
    if args.parallelism is not None and args.parallelism < 1:
        raise ConfigError(f"--parallelism must be at least 1, got {args.parallelism}")
    if args.checkpoint_ms is not None and args.checkpoint_ms < 10:
        raise ConfigError(f"--checkpoint-ms must be at least 10, got {args.checkpoint_ms}")
    sample = getattr(args, "sample", None)
    if sample is not None and not 0 <= sample <= 100_000:
        raise ConfigError(f"--sample must be between 0 and 100000, got {sample}")


def model_spec(args: argparse.Namespace, *, check_key: bool) -> Any:
    from streaming_agents.agent import ModelSpec

    model = args.model or os.environ.get(MODEL_ENV)
    if not model:
        hint = " or --fake-llm" if hasattr(args, "fake_llm") else ""
        raise ConfigError(f"no model: give --model MODEL (or set {MODEL_ENV}){hint}")
    if args.api_key_env and check_key and not os.environ.get(args.api_key_env):
        raise ConfigError(f"--api-key-env {args.api_key_env}: that variable is not set")
    if check_key and not args.api_base and not args.api_key_env:
        check_model_env(model)
    return ModelSpec(model=model, api_base=args.api_base, api_key_env=args.api_key_env)


def journal_setting(args: argparse.Namespace) -> str | None:
    """The job's journal URI: ``--journal``, or ``--journal-dir DIR`` as ``sqlite://DIR``.

    ``None``: each worker's settings decide.  The URI is checked here and
    resolved on the workers (:mod:`streaming_agents.journal.factory`).
    """
    from streaming_agents.journal.factory import as_journal_uri, check_journal_uri

    uri = getattr(args, "journal", None)
    folder = getattr(args, "journal_dir", None)
    if uri and folder:
        raise ConfigError("give --journal or --journal-dir (deprecated), not both")
    if folder:
        uri = f"sqlite://{Path(folder).expanduser().resolve()}"
    if not uri:
        return None
    uri = as_journal_uri(uri)
    check_journal_uri(uri)
    return uri


def prepare_topics(args: argparse.Namespace, entry: Any, topics: dict[str, str]) -> None:
    """``--create-topics`` / ``--sample N``: create the topics, write the sample records."""
    if not args.create_topics and args.sample is None:
        return
    from streaming_agents.connectors.broker import ensure_topics
    from streaming_agents.testing.kafka import produce

    bootstrap = bootstrap_of(args)
    security = security_of(args)
    # creates only the missing ones: a principal without CREATE rights can use existing topics
    client = {**librdkafka_config(security), "bootstrap.servers": bootstrap}
    ensure_topics(client, sorted(set(topics.values())))
    progress(f"topics ready on {bootstrap}: {', '.join(sorted(set(topics.values())))}")
    if args.sample is None:
        return
    spec = entry.spec
    if spec.sample is None:
        raise ConfigError(f"job {spec.name!r} has no sample data generator")
    records = spec.sample(args.sample, 42 if args.seed is None else args.seed)
    by_topic: dict[str, list[tuple[str | None, str]]] = {}
    for record in records:
        by_topic.setdefault(topics[record.role], []).append((record.key, record.value))
    for topic, batch in by_topic.items():
        produce(bootstrap, topic, batch, security=security)
        progress(f"wrote {len(batch)} sample records to {topic!r}")


def check_model_env(model: str) -> None:
    """Fail early (a user error) for an unknown model or a missing API key variable."""
    from streaming_agents.llm.litellm_client import missing_model_environment

    missing = missing_model_environment(model)
    secrets = [name for name in missing if "KEY" in name or "TOKEN" in name]
    if secrets:
        raise ConfigError(
            f"model {model!r} needs the environment variable(s) {', '.join(secrets)}; "
            f"set them, or unset {MODEL_ENV} to use the fake LLM"
        )
    if missing:  # e.g. OLLAMA_API_BASE, which has a usable default
        progress(f"note: {', '.join(missing)} not set; litellm uses its defaults")


def build_job_env(
    args: argparse.Namespace,
    spec: Any,
    topics: dict[str, str],
    model: Any,
    *,
    checkpoint_ms: int,
    state_backend: Literal["hashmap", "rocksdb"],
) -> Any:
    """A Flink environment with ``spec``'s job built in; ``checkpoint_ms`` and
    ``state_backend`` are the defaults when the options leave them out."""
    from streaming_agents.registry import JobContext
    from streaming_agents.runtime.environment import local_env

    env = local_env(
        parallelism=args.parallelism or 1,
        checkpoint_interval_ms=args.checkpoint_ms or checkpoint_ms,
        state_backend=args.state_backend or state_backend,
        checkpoint_dir=args.checkpoint_dir,
        # the journal's scope: run_agent reads the job's name from pipeline.name
        extra_config={"pipeline.name": str(args.job_name or spec.name)},
    )
    ctx = JobContext(
        bootstrap=bootstrap_of(args),
        model=model,
        topics=topics,
        bounded=args.bounded,
        group_id=args.group_id,
        journal=journal_setting(args),
        capacity=args.capacity,
        security=security_of(args),
    )
    spec.build(env, ctx)
    return env


def root_cause(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.startswith("Caused by:")]
    return (causes[-1] if causes else (lines[0] if lines else type(exc).__name__))[:500]


def progress(message: str) -> None:
    print(f"streaming-agents: {message}", file=sys.stderr, flush=True)
