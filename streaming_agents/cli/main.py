"""``streaming-agents``: the command-line entry point.

Subcommands:

* ``demo [--events N] [--model MODEL]`` -- triage sample insurance claims on a
  local Kafka broker and the Flink mini-cluster, print the decisions.
* ``replay`` / ``shadow`` / ``compare`` -- replay history or dark-launch a
  candidate agent version into a shadow topic, and compare it with production
  (``cli/replay_cmd.py``, docs/replay.md).
* ``history --agent A --key K --input-topic T --journal URI [--at-offset N | --at-time T]``
  -- time travel: one key's memory at a past decision, rebuilt from the input
  topic and the journal with no LLM call (``cli/history_cmd.py``).
* ``agents``, ``run JOB``, ``fake-llm-config`` -- the job registry and local runs
  (``cli/jobs_cmd.py``).
* ``promote JOB --candidate V`` / ``rollback JOB [--to V]`` -- switch production to
  another agent version through a savepoint (``cli/promote_cmd.py``, docs/replay.md).
* ``submit JOB``, ``status``, ``savepoint``, ``cancel`` -- a job on a Flink cluster
  (``cli/cluster_cmd.py``).
* ``sql SCRIPT`` -- run a Flink SQL script with CREATE MODEL / TOOL / AGENT and
  AI_RUN_AGENT (``cli/sql_cmd.py``, docs/sql.md).
* ``version`` -- print the package version.

Exit codes: 0 success, 1 a runtime failure (broker, cluster, LLM provider),
2 a usage or user error (bad arguments, bad configuration), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streaming_agents.cli.cluster_cmd import add_cluster_commands
from streaming_agents.cli.history_cmd import add_history_command
from streaming_agents.cli.jobs_cmd import add_job_commands
from streaming_agents.cli.promote_cmd import add_promote_commands
from streaming_agents.cli.replay_cmd import add_replay_commands
from streaming_agents.cli.signals import Interrupts, interruptible
from streaming_agents.cli.sql_cmd import add_sql_commands
from streaming_agents.errors import StreamingAgentsError, UserError

__all__ = ["build_parser", "main"]

PROG = "streaming-agents"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Apache Flink (PyFlink) as the runtime for always-on LLM agents.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="triage sample insurance claims end to end (local Kafka + Flink + an LLM)",
        description=(
            "Start a local Kafka broker and a fake LLM, write sample insurance claims to "
            "Kafka, run the claim-triage agent on the local Flink mini-cluster (exactly-once "
            "output), print every decision and a summary, then stop everything it started. "
            "Set STREAMING_AGENTS_MODEL (or --model) to a litellm model such as "
            "openai/gpt-4o-mini to use a real LLM; its API key comes from the provider's "
            "usual environment variable (e.g. OPENAI_API_KEY)."
        ),
    )
    demo.add_argument(
        "--events", type=int, default=20, metavar="N", help="number of sample claims (default 20)"
    )
    demo.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="litellm model name, or 'fake' for the scripted fake LLM "
        "(default: $STREAMING_AGENTS_MODEL, else fake)",
    )

    add_job_commands(commands)
    add_cluster_commands(commands)
    add_promote_commands(commands)
    add_replay_commands(commands)
    add_history_command(commands)
    add_sql_commands(commands)
    commands.add_parser("version", help="print the version", description="Print the version.")
    return parser


def _version() -> str:
    from streaming_agents import __version__

    return f"{PROG} {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from streaming_agents.cli.failures import quiet_environment

    quiet_environment()  # before any JVM or litellm starts: the workers inherit it
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else 2
    interrupts = Interrupts()
    try:
        with interruptible() as interrupts:  # even if started with SIGINT ignored
            if args.version or args.command == "version":
                print(_version())
                return 0
            if args.command == "demo":
                from streaming_agents.cli.demo import run_demo

                return run_demo(events=args.events, model=args.model)
            handler = getattr(args, "handler", None)
            if handler is not None:
                return int(handler(args))
            parser.print_help(sys.stderr)
            return 2
    except BaseException as exc:  # noqa: BLE001 - classified below; anything else re-raised
        return _exit_code(exc, interrupts)


def _exit_code(exc: BaseException, interrupts: Interrupts) -> int:
    """The exit code of a command that raised ``exc``; re-raises what is a bug."""
    if interrupts.received or isinstance(exc, KeyboardInterrupt):
        # a signal's KeyboardInterrupt may come out of a C extension as another error
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, UserError):
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, StreamingAgentsError):
        print(f"{PROG}: failed: {exc}", file=sys.stderr)
        return 1
    raise exc


if __name__ == "__main__":
    sys.exit(main())
