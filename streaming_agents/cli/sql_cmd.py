"""``streaming-agents sql SCRIPT``: run a SQL script with CREATE MODEL / TOOL / AGENT.

Statements run in order on the local mini-cluster (checkpointing on,
exactly-once); each INSERT is a Flink job and the command waits for all of
them (bounded sources end, unbounded ones run until interrupted).
``--check`` parses the script and checks its models, tools and agents
without starting Flink.  ``${name}`` in the script is replaced by
``--var name=value``, else the environment variable, else
``${name:-default}``'s default.  Python modules next to the script can be
named by ``CREATE TOOL ... USING FUNCTION 'module.function'``.  A failing
job is restarted at most ``--restart-attempts`` times (each failure's root
cause is printed on stderr as it happens), then the command exits 1.
``--kafka-security FILE`` (default ``$STREAMING_AGENTS_KAFKA_SECURITY``) sets
``${KAFKA_SECURITY}``: the setting's ``properties.*`` table options, each
quoted, after a leading comma (empty for PLAINTEXT), for the end of a Kafka
table's ``WITH (...)``: ``WITH ('connector' = 'kafka', ... ${KAFKA_SECURITY})``.
Secrets stay references (``${file:...}``) that the Kafka clients resolve.
``--rest HOST:PORT`` runs the jobs on a standalone Flink cluster instead,
shipping what its workers need (``--ship deps``, default; ``library``;
``none``).  Fail loudly: when a statement's records were mostly
dead-lettered or answered FAILED by an AI function (share above
``--max-dead-letter-ratio``, default 0.5, 1 = off), the command says so in
one line and exits 1 (on Ctrl-C the line is printed and the exit code
stays 130).  With ``--rest`` the workers count into a Kafka topic on the
broker of the Kafka journal or of the script's Kafka JSON tables
(:mod:`streaming_agents.sql.tally_kafka`).  See docs/sql.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streaming_agents.cli.failures import (
    MostlyDeadLettered,
    add_dead_letter_argument,
    check_parts,
    max_dead_letter_ratio,
)
from streaming_agents.cli.job_options import add_security_argument, journal_setting, security_of
from streaming_agents.cli.ship import SHIP_MODES
from streaming_agents.connectors.security import (
    KafkaSecurity,
    librdkafka_config,
    sql_string,
    table_options,
)
from streaming_agents.errors import ConfigError

if TYPE_CHECKING:
    from pyflink.table import TableEnvironment

    from streaming_agents.sql.remote import RemoteTarget
    from streaming_agents.sql.tally_kafka import RemoteTally

__all__ = ["add_sql_commands", "run_sql_command"]


def add_sql_commands(subparsers: Any) -> None:
    """Add ``sql`` to the CLI's subparsers (its ``handler`` returns the exit code)."""
    parser = subparsers.add_parser(
        "sql",
        help="run a Flink SQL script with CREATE MODEL / TOOL / AGENT and AI_RUN_AGENT",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("script", help="the .sql file")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set ${NAME} in the script (repeatable)",
    )
    parser.add_argument("--check", action="store_true", help="check the script, run nothing")
    parser.add_argument("--parallelism", type=int, default=1, help="default parallelism (1)")
    parser.add_argument(
        "--checkpoint-interval",
        type=int,
        default=5000,
        metavar="MS",
        help="exactly-once checkpoint interval in ms; also the output latency (5000)",
    )
    parser.add_argument("--checkpoint-dir", default=None, help="where checkpoints are kept")
    parser.add_argument("--state-backend", choices=["hashmap", "rocksdb"], default="hashmap")
    parser.add_argument(
        "--journal",
        default=None,
        metavar="URI",
        help="the LLM journal of every agent and model, resolved on the workers: "
        "sqlite:///DIR (a file per agent) or sqlite:///FILE.sqlite, kafka://HOST:PORT/TOPIC "
        "(clusters), none (default: $STREAMING_AGENTS_JOURNAL, else sqlite://)",
    )
    parser.add_argument("--journal-dir", default=None, help="older form of --journal sqlite:///DIR")
    parser.add_argument(
        "--restart-attempts",
        type=int,
        default=3,
        metavar="N",
        help="restarts of a failing job before the command fails with its root cause (3; 0: "
        "none); Flink's restart-strategy.fixed-delay.attempts",
    )
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between restarts (2); restart-strategy.fixed-delay.delay",
    )
    parser.add_argument(
        "--rest",
        default=None,
        metavar="HOST:PORT",
        help="run the jobs on the standalone Flink cluster whose REST API this is (default: "
        "the local mini-cluster); the workers run the cluster's python.executable",
    )
    parser.add_argument(
        "--ship",
        choices=SHIP_MODES,
        default="deps",
        help="with --rest, what the workers get: deps (default) = streaming_agents and every "
        "package it needs that apache-flink does not bring (this machine's builds: same Python "
        "and platform on the workers); library = streaming_agents only; none = nothing",
    )
    add_security_argument(parser)
    add_dead_letter_argument(parser)
    parser.set_defaults(handler=run_sql_command)


SECURITY_VARIABLE = "KAFKA_SECURITY"


def security_options(security: KafkaSecurity | None) -> str:
    """``, 'properties.k' = 'v', ...`` for a Kafka table's WITH clause ('' for PLAINTEXT)."""
    if security is None:
        return ""
    options = table_options(security)
    return "".join(f", {sql_string(k)} = {sql_string(v)}" for k, v in options.items())


def _variables(pairs: list[str]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--var needs NAME=VALUE, got {pair!r}")
        variables[name.strip()] = value
    return variables


def run_sql_command(args: argparse.Namespace) -> int:
    """Run (or check) the script; returns the exit code."""
    path = Path(args.script)
    if not path.is_file():
        raise ConfigError(f"no such SQL script: {path}")
    text = path.read_text(encoding="utf-8")
    variables = _variables(args.var)
    variables.setdefault(SECURITY_VARIABLE, security_options(security_of(args)))
    ratio = max_dead_letter_ratio(args)
    journal = journal_setting(args)  # checked as the workers' factory will read it
    if args.check:
        from streaming_agents.journal.factory import journal_uri
        from streaming_agents.sql.check import check_script

        for line in check_script(text, variables, path.parent):
            print(line)
        print(f"journal: {journal_uri(journal)}")
        print(f"{path}: OK")
        return 0
    if args.rest:
        return _run_on_cluster(args, text, variables, path, ratio)
    return _run_locally(args, text, variables, path, ratio)


def _run_locally(
    args: argparse.Namespace, text: str, variables: dict[str, str], path: Path, ratio: float
) -> int:
    """The script on the local mini-cluster, then the verdict on what its jobs counted."""
    import shutil
    import tempfile

    from streaming_agents.sql.session import default_table_env

    tally_dir = Path(tempfile.mkdtemp(prefix="sa-sql-tally-"))
    try:
        t_env = default_table_env(restart_attempts=args.restart_attempts, **_env_args(args))
        _with_verdict(
            lambda: _run_script(args, text, variables, path, t_env, tally_dir=tally_dir),
            lambda: _verdict(path, str(tally_dir), ratio),
        )
    finally:
        shutil.rmtree(tally_dir, ignore_errors=True)
    return 0


def _with_verdict(run: Callable[[], None], verdict: Callable[[], None]) -> None:
    """``run`` the script, then ``verdict``; on Ctrl-C (unbounded scripts) the verdict, then 130."""
    from streaming_agents.cli.signals import interrupts_ignored

    try:
        run()
    except KeyboardInterrupt:
        with interrupts_ignored():
            try:
                verdict()
            except MostlyDeadLettered as exc:
                print(f"streaming-agents: {exc}", file=sys.stderr, flush=True)
        raise
    verdict()


def _verdict(
    path: Path, target: str, ratio: float, client: Mapping[str, Any] | None = None
) -> None:
    """Print what each statement's jobs counted; fail when a statement mostly failed."""
    from streaming_agents.sql.tally import read_tallies

    counted = read_tallies(target, client)
    for c in counted:
        dead, failed = sum(c.dead.values()), sum(c.failed.values())
        parts = []
        if c.inputs:
            parts.append(f"{c.inputs} records read ({dead} dead letters)")
        if c.ai_rows:
            parts.append(f"{c.ai_rows} AI rows ({failed} FAILED)")
        print(f"[{c.number}] counted: {', '.join(parts)}", flush=True)
    check_parts(
        ((f"sql {path.name} statement {c.number} (line {c.line})", c.total, c.reasons())
         for c in counted),
        ratio,
        failed="dead-lettered or FAILED",
    )  # fmt: skip


def _run_script(
    args: argparse.Namespace,
    text: str,
    variables: dict[str, str],
    path: Path,
    t_env: TableEnvironment,
    remote: RemoteTarget | None = None,
    tally_dir: Path | None = None,
    tally: RemoteTally | None = None,
) -> None:
    """The script's statements on ``t_env`` (local, or the cluster of ``remote``)."""
    from streaming_agents.sql.session import run_sql_script

    run_sql_script(
        text,
        t_env=t_env,
        variables=variables,
        journal_dir=args.journal_dir,
        journal=args.journal,
        tally_dir=tally_dir,
        remote_tally=tally,
        base_dir=path.parent,
        out=sys.stdout,
        err=sys.stderr,
        remote=remote,
    )


def _env_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "restart_delay_s": args.restart_delay,
        "parallelism": args.parallelism,
        "checkpoint_interval_ms": args.checkpoint_interval,
        "state_backend": args.state_backend,
        "checkpoint_dir": args.checkpoint_dir,
    }


def _run_on_cluster(
    args: argparse.Namespace, text: str, variables: dict[str, str], path: Path, ratio: float
) -> int:
    """The script's jobs on the cluster at ``--rest`` (see :mod:`streaming_agents.sql.remote`).

    The jobs count into a topic (:class:`~streaming_agents.sql.tally_kafka.RemoteTally`)
    read here for the verdict; without a broker to put it on there is no verdict (one note).
    """
    import shutil
    import tempfile

    from streaming_agents.sql.remote import prepare_remote, remote_table_env
    from streaming_agents.sql.tally_kafka import RemoteTally

    workdir = Path(tempfile.mkdtemp(prefix="sa-sql-"))
    tally = RemoteTally(librdkafka_config(security_of(args)))

    def verdict() -> None:
        if tally.target is None:
            print(f"streaming-agents: note: no dead-letter verdict: {tally.problem}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return
        _verdict(path, tally.target, ratio, tally.client)

    try:
        target = prepare_remote(args.rest, args.ship, workdir)
        if target.shipped:
            print(f"streaming-agents: {target.shipped}", file=sys.stderr, flush=True)
        t_env = remote_table_env(target, args.restart_attempts, **_env_args(args))
        _with_verdict(
            lambda: _run_script(args, text, variables, path, t_env, remote=target, tally=tally),
            verdict,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
