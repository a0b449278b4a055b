"""``streaming-agents replay | shadow | compare``: replays, dark launches, comparison reports.

* ``replay --agent MODULE:ATTR --topic T --from POS --to POS --shadow-topic S
  [--journal URI] [--key FIELD] [--production-topic P [--html FILE]]``
* ``shadow --agent MODULE:ATTR --topic T --shadow-topic S [--starting latest|TIME]``
* ``compare --production TOPIC --candidate TOPIC [--html report.html]``

Positions: ISO-8601 times (UTC unless an offset is given), epoch
milliseconds, ``offset:N`` / ``offset:P=N,P=N``, ``earliest``, ``latest``.
Bad ranges, missing topics, records that are not what they should be and
unsafe shadow topics are user errors (exit code 2).  Progress goes to
stderr, reports to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from streaming_agents.cli.failures import (
    add_dead_letter_argument,
    check_dead_letters,
    max_dead_letter_ratio,
    reasons_of,
)
from streaming_agents.cli.job_options import add_security_argument, security_of
from streaming_agents.cli.memory_options import add_memory_arguments, memory_savepoint, range_start
from streaming_agents.connectors.broker import check_broker
from streaming_agents.connectors.security import KafkaSecurity, librdkafka_config
from streaming_agents.replay.judge import add_judge_arguments, apply_judge, judge_options

__all__ = ["add_replay_commands", "run_compare", "run_replay", "run_shadow"]

BOOTSTRAP_ENV = "STREAMING_AGENTS_KAFKA_BOOTSTRAP"


def _bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (default: ${BOOTSTRAP_ENV}, else localhost:9092)",
    )
    add_security_argument(parser)


def _resolve_bootstrap(args: argparse.Namespace) -> tuple[str, KafkaSecurity | None]:
    """The broker address and security setting, checked: one clear error when nothing answers."""
    bootstrap = str(args.bootstrap or os.environ.get(BOOTSTRAP_ENV) or "localhost:9092")
    security = security_of(args)
    check_broker(bootstrap, 10.0, **librdkafka_config(security))
    return bootstrap, security


def _run_dead_letters(
    bootstrap: str,
    shadow_topic: str,
    run_id: str,
    start: dict[int, int] | None,
    security: KafkaSecurity | None,
) -> tuple[int, list[str]]:
    """(records, reasons of the dead letters) that run ``run_id`` wrote to ``shadow_topic``."""
    from streaming_agents.replay.topics import read_topic

    mine, dead = 0, []
    records = read_topic(
        bootstrap, shadow_topic, start=start or None, timeout_s=60, security=security
    )
    for record in records:
        try:
            doc = json.loads(record.value or b"{}")
        except ValueError:
            continue
        if not isinstance(doc, dict) or (doc.get("replay") or {}).get("run") != run_id:
            continue
        mine += 1
        if doc.get("dead_letter") is True:
            dead.append(doc)
    return mine, reasons_of(json.dumps(d) for d in dead)


def add_replay_commands(subparsers: Any) -> None:
    """Add ``replay``, ``shadow`` and ``compare`` to the CLI's subparsers.

    Each parser's ``handler`` default is the function to call with the
    parsed arguments; it returns the exit code.
    """
    _add_replay(subparsers)
    _add_shadow(subparsers)
    _add_compare(subparsers)


def _add_replay(subparsers: Any) -> None:
    rp = subparsers.add_parser(
        "replay",
        help="replay a slice of a topic through an agent version into a shadow topic",
        description=(
            "Run an agent version over [--from, --to) of a Kafka topic (a bounded Flink job) "
            "and write its outputs, marked shadow, to --shadow-topic. Side-effecting tools are "
            "not run. Production topics and consumer groups are only read. With --journal (the "
            "production journal's URI, e.g. kafka://HOST:PORT/TOPIC?scope=JOB, or a SQLite "
            "file; read where it is, never copied or written) calls the record can answer are "
            "not made again, and the first request that differs from the record is reported "
            "per key."
        ),
    )
    rp.add_argument("--agent", required=True, metavar="MODULE:ATTR", help="the agent to run")
    rp.add_argument("--topic", required=True, help="the topic to replay")
    rp.add_argument(
        "--from",
        dest="start",
        default=None,
        metavar="POS",
        help="start (incl.; default earliest, or savepoint with a memory savepoint)",
    )
    rp.add_argument("--to", dest="stop", default="latest", metavar="POS", help="end (excl.)")
    rp.add_argument("--shadow-topic", required=True, help="where the outputs go")
    rp.add_argument("--key", default="key", metavar="FIELD", help="event field to key by")
    rp.add_argument(
        "--journal",
        default=None,
        metavar="URI",
        help="production's journal, read-only: kafka://HOST:PORT/TOPIC[?scope=JOB] "
        "or sqlite:///PATH (a plain path is a SQLite file)",
    )
    rp.add_argument(
        "--production-topic",
        default=None,
        metavar="TOPIC",
        help="production's output topic: refused as shadow topic; compared with after the run",
    )
    rp.add_argument("--html", default=None, metavar="FILE", help="HTML comparison report")
    rp.add_argument("--audit-topic", default=None, metavar="TOPIC", help="audit records go here")
    rp.add_argument("--capacity", type=int, default=100, help="LLM calls in flight (default 100)")
    rp.add_argument("--mode", choices=["streaming", "batch"], default="streaming")
    rp.add_argument(
        "--run-dir", default=None, help="where run files go (the run's journal, summary)"
    )
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dead_letter_argument(rp)
    add_judge_arguments(rp)
    add_memory_arguments(rp)
    _bootstrap(rp)
    rp.set_defaults(handler=run_replay)


def _add_shadow(subparsers: Any) -> None:
    sp = subparsers.add_parser(
        "shadow",
        help="run a candidate agent on the live topic beside production",
        description=(
            "Dark launch: consume the live topic in the candidate's own consumer group and "
            "write its outputs, marked shadow, to --shadow-topic; side-effecting tools are not "
            "run. Runs until Ctrl-C or --duration."
        ),
    )
    sp.add_argument("--agent", required=True, metavar="MODULE:ATTR")
    sp.add_argument("--topic", required=True)
    sp.add_argument("--shadow-topic", required=True)
    sp.add_argument("--key", default="key", metavar="FIELD")
    sp.add_argument(
        "--starting", default="latest", help="latest, earliest or a time (ISO-8601 / epoch ms)"
    )
    sp.add_argument("--group-id", default=None)
    sp.add_argument("--production-topic", default=None, metavar="TOPIC")
    sp.add_argument("--audit-topic", default=None, metavar="TOPIC", help="audit records go here")
    sp.add_argument("--duration", type=float, default=None, metavar="SECONDS")
    sp.add_argument("--capacity", type=int, default=100)
    add_dead_letter_argument(sp)
    add_memory_arguments(sp)
    _bootstrap(sp)
    sp.set_defaults(handler=run_shadow)


def _add_compare(subparsers: Any) -> None:
    cp = subparsers.add_parser(
        "compare",
        help="compare a candidate's outputs with production's",
        description=(
            "Join two output topics by input (the input's id field, else key + the input's "
            "canonical JSON) and report agreement (overall and per output field), the differing "
            "cases, token/cost deltas and latency percentiles."
        ),
    )
    cp.add_argument("--production", required=True, metavar="TOPIC")
    cp.add_argument("--candidate", required=True, metavar="TOPIC")
    cp.add_argument("--html", default=None, metavar="FILE", help="write the HTML report here")
    cp.add_argument("--json", default=None, metavar="FILE", help="write the numbers as JSON")
    cp.add_argument("--join", choices=["auto", "id", "input"], default="auto")
    cp.add_argument("--run", default=None, metavar="RUN_ID", help="which replay run to compare")
    cp.add_argument("--cases", type=int, default=10, help="differing cases to print")
    add_judge_arguments(cp)
    _bootstrap(cp)
    cp.set_defaults(handler=run_compare)


def _write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def run_replay(args: argparse.Namespace) -> int:
    from streaming_agents.replay import (
        ReplayRange,
        compare,
        load_agent,
        parse_position,
        render_html,
        render_table,
        replay,
    )

    rng = ReplayRange(
        parse_position(range_start(args), what="--from"), parse_position(args.stop, what="--to")
    )
    rng.check()
    if (args.html or args.judge_model) and not args.production_topic:
        from streaming_agents.errors import ConfigError

        raise ConfigError("--html/--judge-model need --production-topic (outputs to compare with)")
    judge_options(args)  # bad --judge-* options fail now, not after the replay
    ratio = max_dead_letter_ratio(args)
    agent = load_agent(args.agent)
    bootstrap, security = _resolve_bootstrap(args)
    result = replay(
        agent,
        bootstrap=bootstrap,
        topic=args.topic,
        shadow_topic=args.shadow_topic,
        range=rng,
        key_field=args.key,
        journal=args.journal,
        production_topic=args.production_topic,
        capacity=args.capacity,
        mode=args.mode,
        progress=not args.no_progress,
        run_dir=args.run_dir,
        audit_topic=args.audit_topic,
        security=security,
        memory_from=memory_savepoint(args, agent.name),
    )
    print(result.summary())
    if args.production_topic:
        report = compare(
            bootstrap,
            args.production_topic,
            args.shadow_topic,
            run_id=result.run_id,
            security=security,
        )
        from streaming_agents.replay.report_data import RunInfo

        report.run = RunInfo.of_replay(result)
        report = apply_judge(
            args, report, f"sqlite://{Path(result.run_dir).resolve() / 'judge.sqlite'}"
        )
        print()
        print(render_table(report))
        if args.html:
            _write(args.html, render_html(report, f"{agent.name}@{agent.version} vs production"))
            print(f"HTML report: {args.html}", file=sys.stderr)
    if result.dead_letters:
        _, reasons = _run_dead_letters(
            bootstrap, args.shadow_topic, result.run_id, result.shadow_start, security
        )
        total = result.outputs + result.dead_letters
        check_dead_letters(f"replay {result.run_id}", total, reasons, ratio)
    return 0


def run_shadow(args: argparse.Namespace) -> int:
    from streaming_agents.replay import load_agent, parse_position, shadow

    starting: Any = args.starting
    if starting not in ("latest", "earliest"):
        pos = parse_position(starting, what="--starting")
        if pos.timestamp_ms is None:
            from streaming_agents.errors import ConfigError

            raise ConfigError("--starting takes latest, earliest or a time")
        starting = pos.timestamp_ms
    ratio = max_dead_letter_ratio(args)
    agent = load_agent(args.agent)
    bootstrap, security = _resolve_bootstrap(args)
    run = shadow(
        agent,
        bootstrap=bootstrap,
        topic=args.topic,
        shadow_topic=args.shadow_topic,
        key_field=args.key,
        starting=starting,
        group_id=args.group_id,
        production_topic=args.production_topic,
        capacity=args.capacity,
        audit_topic=args.audit_topic,
        security=security,
        memory_from=memory_savepoint(args, agent.name),
    )
    print(
        f"shadow {run.run_id}: job {run.job_id}, group {run.group_id} -> {run.shadow_topic}; "
        f"memory start: {run.memory_start.describe()}",
        file=sys.stderr,
    )
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        run.stop()
    fenced = run.fenced_calls(agent.name)
    total, reasons = _run_dead_letters(bootstrap, run.shadow_topic, run.run_id, None, security)
    print(
        f"stopped; {total} outputs ({len(reasons)} dead letters); side-effecting tool calls "
        f"not run: {len(fenced)}"
    )
    check_dead_letters(f"shadow {run.run_id}", total, reasons, ratio)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from streaming_agents.replay import compare, render_html, render_table

    judge_options(args)  # bad --judge-* options fail before the topics are read
    bootstrap, security = _resolve_bootstrap(args)
    report = compare(
        bootstrap,
        args.production,
        args.candidate,
        join=args.join,
        run_id=args.run,
        security=security,
    )
    report = apply_judge(args, report)
    print(render_table(report, max_cases=args.cases))
    if args.html:
        _write(args.html, render_html(report))
        print(f"HTML report: {args.html}", file=sys.stderr)
    if args.json:
        _write(args.json, json.dumps(report.to_dict(), indent=1, default=str))
    return 0
