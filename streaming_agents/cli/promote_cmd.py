"""``streaming-agents promote | rollback``: switch production to another agent version.

* ``promote JOB --candidate VERSION --rest URL --savepoint-dir DIR [submit's job options]``
* ``rollback JOB [--to VERSION] --rest URL --savepoint-dir DIR [submit's job options]``

Both stop the RUNNING job ``JOB`` (or ``JOB@<version>``) with a savepoint and
start the other version from it with ``submit`` (``-s SAVEPOINT -n``), named
``JOB@VERSION``, with ``$STREAMING_AGENTS_AGENT_VERSION`` set for the build
(:mod:`streaming_agents.versions`); see :mod:`streaming_agents.promote` for
what carries over and why no input is lost or answered twice.  The job
options (``--bootstrap``, ``--model``, ``--topic``, ``--journal``...) must be
the ones production was submitted with.  ``rollback`` without ``--to`` goes
back to the version the last ``promote`` (recorded in the savepoint folder)
replaced.  Prints the new job id on stdout and the switch on stderr.

A job that lists its versions' memory classes as ``VERSION_MEMORY`` (a
mapping in its package, version name -> :class:`~streaming_agents.memory.Memory`
subclass) gets its memory schemas checked before production is stopped: a
rollback to a version whose schema is older than the running one is refused
unless that version declares it reads the newer documents
(:func:`streaming_agents.promote.memory_switch_problem`).  ``rollback --from
SAVEPOINT`` starts the version from an earlier savepoint instead (the one its
promotion took): its own memory and offsets, so the inputs since then are
answered again.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streaming_agents.cli.job_options import add_job_arguments, progress
from streaming_agents.cli.ship import SHIP_MODES
from streaming_agents.errors import ConfigError, InfrastructureError
from streaming_agents.versions import AGENT_VERSION_ENV

__all__ = ["add_promote_commands"]

REST_ENV = "STREAMING_AGENTS_FLINK_REST"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB", help="the registered job (name or folder)")
    parser.add_argument(
        "--rest",
        default=None,
        metavar="URL",
        help=f"the Flink REST API (default: ${REST_ENV}, else http://localhost:8081)",
    )
    parser.add_argument(
        "--savepoint-dir",
        required=True,
        metavar="DIR",
        help="where the switch's savepoint goes (a folder the cluster can write and read)",
    )
    parser.add_argument("--job-id", default=None, help="production's job id (default: by name)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="S", help="per step")
    add_job_arguments(parser)
    parser.add_argument("--pyreq", default=None, metavar="FILE", help="requirements for workers")
    parser.add_argument("--ship", choices=SHIP_MODES, default="deps", help="as for submit")
    parser.add_argument("--no-ship", action="store_true", help="same as --ship none")


def add_promote_commands(subparsers: Any) -> None:
    """Add ``promote`` and ``rollback`` (each parser's ``handler`` returns the exit code)."""
    pr = subparsers.add_parser(
        "promote",
        help="stop production with a savepoint and start a candidate version from it",
        description="Stop the RUNNING job JOB with a savepoint and start --candidate from it: "
        "same offsets and consumer group, memory carried over (migrated), exactly once "
        "across the switch. If the candidate cannot start, production is restarted.",
    )
    pr.add_argument("--candidate", required=True, metavar="VERSION", help="the version to run")
    _common(pr)
    pr.set_defaults(handler=run_promote)

    rb = subparsers.add_parser(
        "rollback",
        help="go back to the previous version the same way (savepoint, restart)",
        description="Stop the RUNNING job JOB with a savepoint and start --to VERSION (default: "
        "the version the last promote replaced) from it.",
    )
    rb.add_argument("--to", default=None, metavar="VERSION", help="the version to go back to")
    rb.add_argument(
        "--from",
        dest="restore_from",
        default=None,
        metavar="SAVEPOINT",
        help="start it from this earlier savepoint (the one its promotion took) instead of a "
        "new one: its memory and offsets then; the inputs since are answered again",
    )
    _common(rb)
    rb.set_defaults(handler=run_rollback)


@contextlib.contextmanager
def _agent_version(version: str) -> Iterator[None]:
    """``$STREAMING_AGENTS_AGENT_VERSION`` = ``version`` (unset for ``""``) while submitting."""
    before = os.environ.get(AGENT_VERSION_ENV)
    if version:
        os.environ[AGENT_VERSION_ENV] = version
    else:
        os.environ.pop(AGENT_VERSION_ENV, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AGENT_VERSION_ENV, None)
        else:
            os.environ[AGENT_VERSION_ENV] = before


def _submitter(args: argparse.Namespace, base_name: str) -> Any:
    """``submit(version, savepoint) -> job id`` through the ``submit`` command."""
    from streaming_agents.cli.cluster_cmd import run_submit

    def submit(version: str, savepoint: str) -> str:
        sub = copy.copy(args)
        sub.savepoint = savepoint
        sub.allow_non_restored_state = True
        sub.job_name = f"{base_name}@{version}" if version else base_name
        sub.sample, sub.seed, sub.create_topics = None, None, False
        out = io.StringIO()
        with _agent_version(version), contextlib.redirect_stdout(out):
            run_submit(sub)
        found = re.search(r"\b([0-9a-f]{32})\b", out.getvalue())
        if found is None:
            raise InfrastructureError(f"submit printed no job id: {out.getvalue()[:300]!r}")
        return found.group(1)

    return submit


def _memory_check(entry: Any, base: str, savepoint_dir: Path) -> Any:
    """``check(running, target)`` over the job's ``VERSION_MEMORY`` (``None``: not declared)."""
    from streaming_agents.promote import check_memory_switch

    memories = getattr(entry.module, "VERSION_MEMORY", None)
    if memories is None:
        progress(f"{base} declares no VERSION_MEMORY: memory schemas are not checked")
        return None
    agents = entry.spec.agents
    default = agents[0].version if agents else ""

    def check(running: str, target: str) -> None:
        check_memory_switch(
            memories,
            running or default,
            target or default,
            job=base,
            savepoint_dir=savepoint_dir,
        )

    return check


def _switch(args: argparse.Namespace, version: str, action: str) -> int:
    from streaming_agents.promote import FlinkRest, switch_version
    from streaming_agents.registry import load_job

    entry = load_job(args.job)
    base = args.job_name or entry.spec.name
    savepoint_dir = Path(args.savepoint_dir).expanduser()
    restore_from = getattr(args, "restore_from", None)
    rest = FlinkRest(str(args.rest or os.environ.get(REST_ENV) or "http://localhost:8081"))
    progress(f"{action}: {base} -> version {version or 'default'} on {rest.url}")
    record = switch_version(
        rest,
        job=base,
        version=version,
        savepoint_dir=savepoint_dir,
        submit=_submitter(args, base),
        action=action,
        job_id=args.job_id,
        timeout_s=args.timeout,
        check=_memory_check(entry, base, savepoint_dir),
        restore_from=restore_from,
    )
    progress(record.describe())
    print(record.to_job_id)
    return 0


def run_promote(args: argparse.Namespace) -> int:
    if not args.candidate.strip() or "@" in args.candidate:
        raise ConfigError(f"--candidate {args.candidate!r} is not a version name")
    return _switch(args, args.candidate.strip(), "promote")


def run_rollback(args: argparse.Namespace) -> int:
    from streaming_agents.promote import last_promotion
    from streaming_agents.registry import load_job

    version = args.to
    if version is None:
        base = args.job_name or load_job(args.job).spec.name
        last = last_promotion(Path(args.savepoint_dir).expanduser(), base)
        if last is None:
            raise ConfigError(
                f"no promotion of {base} recorded in {args.savepoint_dir}: give --to VERSION"
            )
        version = last.from_version
    if args.restore_from:
        progress(
            f"rollback --from {args.restore_from}: version {version or 'default'} starts from "
            "that savepoint's memory and offsets; the inputs read since it are answered again"
        )
    return _switch(args, version, "rollback")
