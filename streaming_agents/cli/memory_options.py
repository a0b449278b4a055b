"""``replay``'s memory options: start each key empty or with production's memory.

* ``--memory-from PATH``: a production savepoint or retained checkpoint (a
  local path or ``file://`` URI this machine can read);
* ``--memory production --rest URL --savepoint-dir DIR [--production-job
  NAME|ID]``: take a savepoint of the RUNNING production job now (it keeps
  running) and start from it.

With either, ``--from`` defaults to ``savepoint``: the offsets the savepoint's
Kafka source had reached (see :mod:`streaming_agents.replay.memory_start`).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from streaming_agents.cli.job_options import progress
from streaming_agents.errors import ConfigError

__all__ = ["add_memory_arguments", "memory_savepoint", "range_start"]

REST_ENV = "STREAMING_AGENTS_FLINK_REST"


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("memory start (default: every key starts empty)")
    group.add_argument(
        "--memory-from",
        default=None,
        metavar="SAVEPOINT",
        help="start each key with the memory in this production savepoint or retained "
        "checkpoint (restored through the agent's uid agent-<name>; Memory.migrate applies)",
    )
    group.add_argument(
        "--memory",
        choices=["empty", "production"],
        default="empty",
        help="production: take a savepoint of the running production job (--rest, "
        "--savepoint-dir, --production-job) and start from it",
    )
    group.add_argument("--rest", default=None, metavar="URL", help="production's Flink REST API")
    group.add_argument(
        "--savepoint-dir", default=None, metavar="DIR", help="for --memory production"
    )
    group.add_argument(
        "--production-job",
        default=None,
        metavar="NAME|ID",
        help="production's job name (JOB or JOB@VERSION) or id (default: the agent's name)",
    )


def range_start(args: argparse.Namespace) -> str:
    """``--from``, defaulting to ``savepoint`` when memory comes from one, else ``earliest``."""
    if args.start is not None:
        return str(args.start)
    uses_memory = args.memory_from is not None or args.memory == "production"
    return "savepoint" if uses_memory else "earliest"


def memory_savepoint(args: argparse.Namespace, agent_name: str) -> str | None:
    """The savepoint to start memory from (taking one for ``--memory production``)."""
    if args.memory_from is not None:
        if args.memory == "production":
            raise ConfigError("--memory-from and --memory production: give one of them")
        return str(args.memory_from)
    if args.memory != "production":
        return None
    if not args.savepoint_dir:
        raise ConfigError("--memory production needs --savepoint-dir (where the savepoint goes)")
    from streaming_agents.promote import FlinkRest, production_job

    rest = FlinkRest(str(args.rest or os.environ.get(REST_ENV) or "http://localhost:8081"))
    wanted = args.production_job or agent_name
    by_id = re.fullmatch(r"[0-9a-f]{32}", wanted) is not None
    job = production_job(rest, wanted, wanted if by_id else None)
    target = Path(args.savepoint_dir).expanduser().resolve()
    target.mkdir(parents=True, exist_ok=True)
    progress(f"taking a savepoint of {job['name']} (job {job['jid']}); it keeps running")
    location = rest.savepoint(job["jid"], target.as_uri(), stop=False, timeout_s=300.0)
    progress(f"savepoint {location}")
    return location
