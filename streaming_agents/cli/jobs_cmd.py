"""``streaming-agents agents | run | fake-llm-config``, and the ``flink run`` entry point.

* ``agents`` -- the registry: every agent of every job under ``jobs/``, its version and
  topics, and which agents feed which through a topic.
* ``run JOB`` -- run a job on the local Flink mini-cluster (this process), against a
  Kafka broker; ``--sample N`` writes the job's sample records first, ``--fake-llm``
  answers with the job's scripted fake LLM; ``--bounded`` stops at the input's end.
* ``fake-llm-config [JOB...]`` -- the fake LLM configuration (JSON) answering the jobs'
  sample data (``python -m streaming_agents.testing.fake_llm --config "$(...)"``).

JOB is a folder under ``jobs/`` (``supply_chain``), its spec name (``supply-chain``) or a
path to a job folder.  Bad arguments and unknown jobs or topics are user errors (exit 2);
an unreachable broker or a failed job exit 1.  The cluster commands (``submit``,
``status``, ``savepoint``, ``cancel``) are in ``cli/cluster_cmd.py``.

``python -m streaming_agents.cli.jobs_cmd`` is the program ``submit`` hands to
``flink run``: it builds the job's graph in the cluster's context environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from streaming_agents.cli.failures import (
    MostlyDeadLettered,
    add_dead_letter_argument,
    check_dead_letters,
    max_dead_letter_ratio,
    reasons_of,
)
from streaming_agents.cli.job_options import (
    FAKE_KEY_ENV,
    SUBMIT_CHECKPOINT_MS,
    add_job_arguments,
    add_topic_arguments,
    bootstrap_of,
    build_job_env,
    check_numbers,
    model_spec,
    prepare_topics,
    progress,
    root_cause,
    security_of,
    topic_overrides,
)
from streaming_agents.cli.signals import interrupts_ignored
from streaming_agents.errors import ConfigError, InfrastructureError, UserError

__all__ = ["ENTRY_MODULE", "add_job_commands", "entry_main", "entry_parser"]

ENTRY_MODULE = "streaming_agents.cli.jobs_cmd"


def add_job_commands(subparsers: Any) -> None:
    """Add the registry, run and fake-LLM commands to the CLI's subparsers.

    Each parser's ``handler`` default is the function to call with the
    parsed arguments; it returns the exit code.
    """
    ag = subparsers.add_parser(
        "agents",
        help="list the agents of every job, their versions and topics",
        description="List every agent declared by the jobs under jobs/ (each job's spec.py): "
        "name, version, job, input and output topics, then the agent-to-agent links "
        "(an agent reading a topic another agent writes), and the Kafka ACLs each agent's "
        "principal needs (derived from its declared topics: streaming_agents.connectors.acls).",
    )
    ag.add_argument("--jobs-dir", default=None, metavar="DIR", help="where jobs are discovered")
    ag.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ag.set_defaults(handler=run_agents)

    rn = subparsers.add_parser(
        "run",
        help="run a job on the local Flink mini-cluster",
        description="Run JOB (a folder under jobs/, its name, or a path) on the local Flink "
        "mini-cluster in this process, against a Kafka broker. Runs until Ctrl-C unless "
        "--bounded. --sample N writes the job's deterministic sample records to its input "
        "topics first (creating the topics); --fake-llm starts the fake LLM scripted for "
        "the job's sample data instead of calling a real model.",
    )
    rn.add_argument("job", metavar="JOB")
    add_job_arguments(rn)
    rn.add_argument("--fake-llm", action="store_true", help="use the job's scripted fake LLM")
    add_topic_arguments(rn)
    add_dead_letter_argument(rn)
    rn.set_defaults(handler=run_job)

    fk = subparsers.add_parser(
        "fake-llm-config",
        help="print the fake LLM configuration answering the jobs' sample data",
        description="Print, as JSON, a fake LLM configuration with the scripted rules of the "
        "given jobs (default: every job), for `python -m streaming_agents.testing.fake_llm "
        "--config`.",
    )
    fk.add_argument("jobs", nargs="*", metavar="JOB")
    fk.add_argument("--latency-ms", type=float, default=5.0, help="reply latency (default 5)")
    fk.set_defaults(handler=run_fake_llm_config)


# --------------------------------------------------------------------------- registry


def run_agents(args: argparse.Namespace) -> int:
    from streaming_agents.registry import agents, discover, links

    entries = discover(args.jobs_dir)
    infos = agents(entries)
    found = links(infos)
    acls = _agent_acls(entries)
    if args.json:
        payload = {
            "agents": [
                {
                    "name": a.name,
                    "version": a.version,
                    "job": a.job,
                    "input_topics": list(a.input_topics),
                    "output_topics": list(a.output_topics),
                    "description": a.description,
                    "acls": acls[a.name],
                }
                for a in infos
            ],
            "links": [{"from": ln.producer, "topic": ln.topic, "to": ln.consumer} for ln in found],
        }
        print(json.dumps(payload, indent=2))
        return 0
    header = ("AGENT", "VERSION", "JOB", "INPUT TOPICS", "OUTPUT TOPICS")
    rows = [
        (a.name, a.version, a.job, ",".join(a.input_topics), ",".join(a.output_topics))
        for a in infos
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if found:
        print()
        print("links:")
        for ln in found:
            print(f"  {ln.producer} -> {ln.topic} -> {ln.consumer}")
    print()
    print("ACLs (principal User:<agent>):")
    for name, acl in acls.items():
        print(f"  {name}: " + "; ".join(f"{k} {','.join(v)}" for k, v in acl.items() if v))
    return 0


def _agent_acls(entries: Sequence[Any]) -> dict[str, dict[str, list[str]]]:
    """Each agent's least Kafka access, from its declared topics (default names)."""
    from streaming_agents.connectors.acls import access_for_agent

    return {
        agent.name: access_for_agent(entry.spec, agent.name).describe()
        for entry in entries
        for agent in entry.spec.agents
    }


def run_fake_llm_config(args: argparse.Namespace) -> int:
    from streaming_agents.registry import discover, load_job

    entries = [load_job(j) for j in args.jobs] if args.jobs else discover()
    rules: list[Any] = []
    for entry in entries:
        if entry.spec.fake_rules is not None:
            rules.extend(entry.spec.fake_rules())
    print(json.dumps({"latency_ms": args.latency_ms, "rules": rules}, indent=1))
    return 0


# --------------------------------------------------------------------------- run


def run_job(args: argparse.Namespace) -> int:
    from streaming_agents.registry import load_job

    check_numbers(args)
    ratio = max_dead_letter_ratio(args)
    entry = load_job(args.job)
    spec = entry.spec
    topics = spec.resolve_topics(topic_overrides(args.topic))
    if args.fake_llm and (args.model or args.api_base or args.api_key_env):
        raise ConfigError("--fake-llm cannot be combined with --model, --api-base, --api-key-env")
    if args.fake_llm and spec.fake_rules is None:
        raise ConfigError(f"job {spec.name!r} has no fake LLM rules")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "WARNING")
    model = None if args.fake_llm else model_spec(args, check_key=True)
    fake = None
    try:
        if args.fake_llm:
            from streaming_agents.agent import ModelSpec
            from streaming_agents.testing.fake_llm import FakeLLM

            assert spec.fake_rules is not None
            os.environ.setdefault(FAKE_KEY_ENV, "sk-fake-local-key")
            fake = FakeLLM({"rules": spec.fake_rules(), "latency_ms": 5}).start()
            progress(f"fake LLM {fake.base_url} (the rules of {spec.name})")
            model = ModelSpec(
                model=f"openai/{spec.name}-fake", api_base=fake.base_url, api_key_env=FAKE_KEY_ENV
            )
        from streaming_agents.connectors.broker import check_broker
        from streaming_agents.connectors.security import librdkafka_config

        security = security_of(args)
        check_broker(bootstrap_of(args), 10.0, **librdkafka_config(security))
        prepare_topics(args, entry, topics)
        outputs = _output_topics(spec, topics)
        before = _end_offsets(bootstrap_of(args), outputs, security)
        assert model is not None
        env = build_job_env(args, spec, topics, model, checkpoint_ms=2000, state_backend="hashmap")
        name = args.job_name or spec.name
        mode = "bounded" if args.bounded else "until Ctrl-C"
        progress(f"running {name} on the local Flink mini-cluster ({mode})")
        started = time.monotonic()
        try:
            env.execute(name)
        except KeyboardInterrupt:  # an unbounded run ends here: its verdict, then exit 130
            with interrupts_ignored():
                _verdict_on_stop(name, bootstrap_of(args), outputs, before, security, ratio)
            raise
        except Exception as exc:  # py4j wraps the Java failure; keep its root cause
            raise InfrastructureError(f"the Flink job failed: {root_cause(exc)}") from exc
        progress(f"{name} finished in {time.monotonic() - started:.1f} s")
        if args.bounded:
            _check_outputs(name, bootstrap_of(args), outputs, before, security, ratio)
    finally:
        if fake is not None:
            fake.stop()
    return 0


def _check_outputs(
    name: str,
    bootstrap: str,
    outputs: dict[str, bool],
    before: dict[str, dict[int, int]],
    security: Any,
    ratio: float,
) -> None:
    """Count what a bounded run wrote; fail loudly when too much of it is dead letters."""
    from streaming_agents.replay.errors import NotAuthorized

    try:
        total, reasons = _new_dead_letters(bootstrap, outputs, before, security)
    except NotAuthorized as exc:  # a least-privilege agent writes its outputs, reads none
        progress(
            f"note: dead-letter check skipped: this principal may not read its outputs ({exc})"
        )
        return
    progress(f"{total} records written ({len(reasons)} dead letters)")
    check_dead_letters(name, total, reasons, ratio)


def _verdict_on_stop(
    name: str,
    bootstrap: str,
    outputs: dict[str, bool],
    before: dict[str, dict[int, int]],
    security: Any,
    ratio: float,
) -> None:
    """Ctrl-C ended an unbounded run: say in one line if most of what it committed was
    dead letters (the exit code stays the interrupt's 130)."""
    try:
        _check_outputs(name, bootstrap, outputs, before, security, ratio)
    except MostlyDeadLettered as exc:
        print(f"streaming-agents: {exc}", file=sys.stderr, flush=True)


def _output_topics(spec: Any, topics: dict[str, str]) -> dict[str, bool]:
    """The agents' output topics -> whether the topic takes dead letters (a ``dlq`` role)."""
    roles = {r for agent in spec.agents for r in agent.outputs}
    return {topics[r]: r == "dlq" or r.endswith(("_dlq", "-dlq")) for r in sorted(roles)}


def _end_offsets(
    bootstrap: str, outputs: dict[str, bool], security: Any
) -> dict[str, dict[int, int]]:
    from streaming_agents.replay.errors import MissingTopic
    from streaming_agents.replay.topics import topic_end_offsets

    ends = {}
    for topic in outputs:
        try:
            ends[topic] = topic_end_offsets(bootstrap, topic, security=security)
        except MissingTopic:
            ends[topic] = {}
    return ends


def _new_dead_letters(
    bootstrap: str, outputs: dict[str, bool], before: dict[str, dict[int, int]], security: Any
) -> tuple[int, list[str]]:
    """(records the run wrote to its output topics, reasons of those that are dead letters)."""
    from streaming_agents.replay.topics import read_topic

    total, reasons = 0, []
    for topic, is_dlq in outputs.items():
        start = before.get(topic) or None
        records = read_topic(bootstrap, topic, start=start, timeout_s=60, security=security)
        total += len(records)
        if is_dlq:
            reasons += reasons_of(r.value for r in records)
    return total, reasons


# --------------------------------------------------------------------------- flink run entry


def entry_parser() -> argparse.ArgumentParser:
    """The arguments of the ``flink run`` entry point (also used by deploy/run_job.py)."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_MODULE}")
    parser.add_argument("--job-dir", required=True, metavar="PATH")
    parser.add_argument(
        "--worker-pythonpath",
        default=None,
        metavar="PATHS",
        help="the workers' python.pythonpath (their own site-packages; submit derives it from "
        "the cluster's python.executable); default: this machine's, for a cluster on this host",
    )
    add_job_arguments(parser)
    return parser


def entry_main(argv: Sequence[str] | None = None) -> int:
    """The program ``flink run -pym streaming_agents.cli.jobs_cmd`` executes (client side).

    Builds the job's graph in the cluster's context environment and submits it.
    A user error prints ``streaming-agents: error: ...`` (``submit`` reports it).
    """
    from streaming_agents.registry import load_job

    args = entry_parser().parse_args(None if argv is None else list(argv))
    try:
        check_numbers(args)
        entry = load_job(args.job_dir)
        spec = entry.spec
        topics = spec.resolve_topics(topic_overrides(args.topic))
        model = model_spec(args, check_key=False)
        env = build_job_env(
            args, spec, topics, model, checkpoint_ms=SUBMIT_CHECKPOINT_MS, state_backend="rocksdb"
        )
        if args.worker_pythonpath is not None:
            _use_worker_python(env, args.worker_pythonpath)
        env.execute(args.job_name or spec.name)
    except UserError as exc:
        print(f"streaming-agents: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def _use_worker_python(env: Any, pythonpath: str) -> None:
    """The workers run the cluster's ``python.executable`` with ``pythonpath`` (their own
    site-packages), not this machine's interpreter and folders: on the workers those are
    absent, or (a cluster on this host) would hide what the workers really have."""
    from pyflink.util.java_utils import get_j_env_configuration

    config = get_j_env_configuration(env._j_stream_execution_environment)
    config.removeKey("python.executable")
    config.setString("python.pythonpath", pythonpath)


if __name__ == "__main__":
    sys.exit(entry_main())
