"""``streaming-agents submit | status | savepoint | cancel``: a job on a Flink cluster.

* ``submit JOB --rest URL`` -- submit a job to a Flink cluster with the ``flink`` CLI of the
  pip-installed PyFlink (``flink run -d -pym ...``).  The job graph is built here, on the
  client; the job package and ``streaming_agents`` are shipped to the workers as a zip
  (``-pyfs``); third-party packages (pydantic, litellm, ...) must be installed on the
  cluster (the image of ``deploy/Dockerfile`` has them) or listed with ``--pyreq``.
* ``status [JOB_ID]``, ``savepoint JOB_ID --dir DIR [--stop]``, ``cancel JOB_ID`` -- the
  cluster's REST API.

Bad arguments and unknown jobs, topics or job ids are user errors (exit 2); an
unreachable cluster or broker, or a failed submission, exit 1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streaming_agents.cli.job_options import (
    MODEL_ENV,
    add_job_arguments,
    add_topic_arguments,
    bootstrap_of,
    check_numbers,
    model_spec,
    prepare_topics,
    progress,
    topic_overrides,
)
from streaming_agents.cli.jobs_cmd import ENTRY_MODULE
from streaming_agents.cli.ship import SHIP_MODES, python_tag, stage_dependencies
from streaming_agents.errors import ConfigError, InfrastructureError, UserError
from streaming_agents.flink_rest import TERMINAL, FlinkRest

__all__ = ["REST_ENV", "add_cluster_commands", "flink_run_command", "library_zip"]

REST_ENV = "STREAMING_AGENTS_FLINK_REST"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def add_cluster_commands(subparsers: Any) -> None:
    """Add ``submit``, ``status``, ``savepoint`` and ``cancel`` to the CLI's subparsers.

    Each parser's ``handler`` default is the function to call with the
    parsed arguments; it returns the exit code.
    """
    sb = subparsers.add_parser(
        "submit",
        help="submit a job to a Flink cluster (flink run)",
        description="Build JOB's graph here and submit it, detached, to the Flink cluster whose "
        "REST API is --rest, with the `flink` CLI of the pip-installed PyFlink. The job "
        "package, streaming_agents and the packages it needs beyond PyFlink are shipped "
        "(-pyfs; see --ship), so workers need only PyFlink. The API key variable must be "
        "set in the TaskManagers' environment. Prints the job id.",
    )
    sb.add_argument("job", metavar="JOB")
    _rest_argument(sb)
    add_job_arguments(sb)
    sb.add_argument("--savepoint", default=None, metavar="PATH", help="restore from a savepoint")
    sb.add_argument(
        "--allow-non-restored-state", action="store_true", help="skip state of removed operators"
    )
    sb.add_argument("--pyreq", default=None, metavar="FILE", help="requirements.txt for workers")
    sb.add_argument(
        "--ship",
        choices=SHIP_MODES,
        default="deps",
        help="what the workers get: deps (default) = streaming_agents and every package it "
        "needs that apache-flink does not bring (this machine's builds: same Python and "
        "platform on the workers); library = streaming_agents only (the cluster has the "
        "rest); none = nothing (the cluster has it all)",
    )
    sb.add_argument("--no-ship", action="store_true", help="same as --ship none")
    add_topic_arguments(sb)
    sb.set_defaults(handler=run_submit)

    st = subparsers.add_parser(
        "status",
        help="list the cluster's jobs, or one job's state",
        description="Jobs on the Flink cluster (id, state, name, start time, duration), or the "
        "state of JOB_ID and its tasks.",
    )
    st.add_argument("job_id", nargs="?", default=None, metavar="JOB_ID")
    _rest_argument(st)
    st.set_defaults(handler=run_status)

    sp = subparsers.add_parser(
        "savepoint",
        help="take a savepoint of a running job",
        description="Trigger a savepoint of JOB_ID into --dir (a path or URI the cluster can "
        "write) and wait for it; prints its location. --stop stops the job with the "
        "savepoint (it ends FINISHED); restore with `submit JOB --savepoint LOCATION`.",
    )
    sp.add_argument("job_id", metavar="JOB_ID")
    sp.add_argument("--dir", required=True, metavar="DIR", help="target directory")
    sp.add_argument("--stop", action="store_true", help="stop the job with the savepoint")
    sp.add_argument("--timeout", type=float, default=300.0, metavar="S", help="default 300 s")
    _rest_argument(sp)
    sp.set_defaults(handler=run_savepoint)

    cn = subparsers.add_parser(
        "cancel",
        help="cancel a job",
        description="Cancel JOB_ID and wait until it is CANCELED. Its last checkpoint is kept "
        "when the cluster retains checkpoints on cancellation.",
    )
    cn.add_argument("job_id", metavar="JOB_ID")
    cn.add_argument("--timeout", type=float, default=60.0, metavar="S", help="default 60 s")
    _rest_argument(cn)
    cn.set_defaults(handler=run_cancel)


def _rest_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--rest",
        default=None,
        required=required,
        metavar="URL",
        help=f"the Flink REST API (default: ${REST_ENV}, else http://localhost:8081)",
    )


# --------------------------------------------------------------------------- submit


def library_zip(job_folder: Path, target: Path, *, ship_library: bool = True) -> Path:
    """A zip for ``-pyfs``: the job package under its folder name (+ ``streaming_agents``,
    without the jobs a wheel carries: the job is shipped on its own; no jars either, the
    connector jar goes through ``pipeline.jars``)."""
    import streaming_agents

    folders = [job_folder]
    if ship_library:
        folders.append(Path(streaming_agents.__file__).resolve().parent)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder.parent)
                skipped = {"__pycache__", "_jobs"}
                if skipped.intersection(rel.parts) or not path.is_file():
                    continue
                if path.suffix in {".py", ".typed", ".json", ".md", ".yaml", ".txt"}:
                    archive.write(path, rel.as_posix())
    return target


def _rest_url(args: argparse.Namespace) -> str:
    url = str(args.rest or os.environ.get(REST_ENV) or "http://localhost:8081").rstrip("/")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise ConfigError(f"--rest must be http://HOST:PORT, got {url!r}")
    return url


def flink_run_command(
    rest: str,
    entry_args: Sequence[str],
    pyfs: Path,
    *,
    savepoint: str | None = None,
    allow_non_restored: bool = False,
    pyreq: str | None = None,
    parallelism: int | None = None,
    extra_pyfs: Sequence[Path] = (),
) -> list[str]:
    """The ``flink run`` command line that submits ``entry_args`` to ``rest``, detached."""
    from streaming_agents.testing.cluster import flink_home

    parsed = urllib.parse.urlparse(rest)
    cmd = [
        str(flink_home() / "bin" / "flink"),
        "run",
        "-t",
        "remote",
        f"-Drest.address={parsed.hostname}",
        f"-Drest.port={parsed.port or 80}",
        "-d",
        "-pyclientexec",
        sys.executable,
    ]
    if parallelism:
        cmd += ["-p", str(parallelism)]
    if savepoint:
        cmd += ["-s", savepoint]
    if allow_non_restored:
        cmd.append("-n")
    if pyreq:
        cmd += ["-pyreq", str(Path(pyreq).resolve())]
    cmd += ["-pyfs", ",".join(str(p) for p in [pyfs, *extra_pyfs]), "-pym", ENTRY_MODULE]
    return [*cmd, *entry_args]


def _entry_args(args: argparse.Namespace, job_folder: Path) -> list[str]:
    # `flink run` parses options anywhere on its command line and matches prefixes of its
    # own long options (--job would be taken for --jobmanager): keep these names distinct.
    out = ["--job-dir", str(job_folder), "--bootstrap", bootstrap_of(args)]
    out += ["--model", str(args.model or os.environ.get(MODEL_ENV) or "")]
    for flag, value in (
        ("--api-base", args.api_base),
        ("--api-key-env", args.api_key_env),
        ("--checkpoint-ms", args.checkpoint_ms),
        ("--checkpoint-dir", args.checkpoint_dir),
        ("--state-backend", args.state_backend),
        ("--group-id", args.group_id),
        ("--journal", args.journal),
        ("--journal-dir", args.journal_dir),
        ("--job-name", args.job_name),
    ):
        if value is not None:
            out += [flag, str(value)]
    out += ["--capacity", str(args.capacity)]
    for pair in args.topic:
        out += ["--topic", pair]
    if args.bounded:
        out.append("--bounded")
    from streaming_agents.cli.job_options import security_entry_args

    return out + security_entry_args(args)  # the setting's properties: references only


def run_submit(args: argparse.Namespace) -> int:
    from streaming_agents.jars import connector_jars
    from streaming_agents.registry import load_job
    from streaming_agents.runtime.environment import java_home

    check_numbers(args)
    rest = _rest_url(args)
    entry = load_job(args.job)
    topics = entry.spec.resolve_topics(topic_overrides(args.topic))
    model_spec(args, check_key=False)  # the key is read on the TaskManagers, not here
    if args.pyreq and not Path(args.pyreq).is_file():
        raise ConfigError(f"--pyreq {args.pyreq}: no such file")
    if args.journal_dir:
        args.journal_dir = str(Path(args.journal_dir).expanduser().resolve())
    FlinkRest(rest).call("/overview")  # fail early and clearly when the cluster is not there
    prepare_topics(args, entry, topics)
    ship = "none" if args.no_ship else args.ship
    workdir = Path(tempfile.mkdtemp(prefix="sa-submit-"))
    try:
        pyfs = library_zip(entry.path, workdir / f"{entry.name}.zip", ship_library=ship != "none")
        extra: list[Path] = []
        if ship == "deps":
            count, size = stage_dependencies(workdir / "sa_deps")
            extra.append(workdir / "sa_deps")
            mb = size / 1e6
            progress(f"shipping {count} packages ({mb:.0f} MB, {python_tag()}) to the workers")
        cmd = flink_run_command(
            rest,
            _entry_args(args, entry.path),
            pyfs,
            savepoint=args.savepoint,
            allow_non_restored=args.allow_non_restored_state,
            pyreq=args.pyreq,
            parallelism=args.parallelism,
            extra_pyfs=extra,
        )
        if ship == "deps":
            cmd += ["--worker-pythonpath", _worker_site_packages(rest)]
        (workdir / "log").mkdir()
        # `flink run`'s Python imports streaming_agents from the zip, which has no jar:
        # point it at the connector this process found (wheel, checkout or cache).
        jars = workdir / "jars" / "flink"
        jars.mkdir(parents=True)
        for jar in connector_jars():
            (jars / jar.name).symlink_to(jar)
        env = {
            **os.environ,
            "FLINK_LOG_DIR": str(workdir / "log"),
            "JAVA_HOME": java_home(),
            "SA_JARS_DIR": str(workdir / "jars"),
            "LITELLM_LOCAL_MODEL_COST_MAP": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
        }
        progress(f"submitting {entry.spec.name} to {rest}")
        try:
            done = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=300, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise InfrastructureError("`flink run` did not finish within 300 s") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    output = done.stdout + done.stderr
    found = re.search(r"JobID ([0-9a-f]{32})", output)
    if done.returncode != 0 or not found:
        ours = [ln for ln in output.splitlines() if ln.startswith("streaming-agents: error:")]
        if ours:
            raise UserError(ours[-1].removeprefix("streaming-agents: error: "))
        raise InfrastructureError(
            f"`flink run` failed (exit {done.returncode}):\n{_tail(output, 40)}"
        )
    print(found.group(1))
    progress(f"job {found.group(1)} submitted; `streaming-agents status {found.group(1)}`")
    return 0


def _worker_site_packages(rest: str) -> str:
    """The site-packages of the cluster's ``python.executable`` (a virtualenv's layout:
    ``<venv>/lib/pythonX.Y/site-packages``), for the embedded interpreter of thread mode."""
    executable = FlinkRest(rest).config().get("python.executable")
    if not executable or "/" not in str(executable):
        raise ConfigError(
            "the cluster sets no python.executable (a path to its workers' Python, e.g. a "
            "virtualenv with apache-flink): --ship deps needs it; or install the dependencies "
            "there and use --ship library"
        )
    prefix = Path(str(executable)).parent.parent
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(prefix / "lib" / version / "site-packages")


def _tail(text: str, lines: int) -> str:
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


# --------------------------------------------------------------------------- REST


def _job_id(value: str) -> str:
    if not JOB_ID.match(value):
        raise ConfigError(f"{value!r} is not a Flink job id (32 hex digits)")
    return value


def _known_job(rest: str, job_id: str) -> dict[str, Any]:
    return FlinkRest(rest).job(job_id)


def _when(ms: Any) -> str:
    if not isinstance(ms, int) or ms <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def run_status(args: argparse.Namespace) -> int:
    rest = _rest_url(args)
    if args.job_id:
        job = _known_job(rest, _job_id(args.job_id))
        print(f"{job['jid']}  {job['state']}  {job['name']}")
        print(f"  started {_when(job.get('start-time'))}, duration {job.get('duration', 0)} ms")
        for vertex in job.get("vertices", []):
            print(f"  {vertex.get('status', '?'):<10} {vertex.get('name', '?')}")
        return 0
    jobs = FlinkRest(rest).jobs()
    print(f"{'JOB ID':<32}  {'STATE':<10}  {'STARTED':<19}  NAME")
    for job in sorted(jobs, key=lambda j: -int(j.get("start-time", 0))):
        started = _when(job.get("start-time"))
        print(f"{job['jid']:<32}  {job['state']:<10}  {started:<19}  {job['name']}")
    if not jobs:
        progress(f"no jobs on {rest}")
    return 0


def _target_dir(value: str) -> str:
    if "://" in value:
        return value
    return Path(value).expanduser().resolve().as_uri()


def run_savepoint(args: argparse.Namespace) -> int:
    rest = _rest_url(args)
    job_id = _job_id(args.job_id)
    job = _known_job(rest, job_id)
    if job["state"] != "RUNNING":
        raise ConfigError(f"job {job_id} is {job['state']}: savepoints need a RUNNING job")
    location = FlinkRest(rest).savepoint(
        job_id, _target_dir(args.dir), stop=args.stop, timeout_s=args.timeout
    )
    print(location)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    rest = _rest_url(args)
    job_id = _job_id(args.job_id)
    job = _known_job(rest, job_id)
    if job["state"] in TERMINAL:
        raise ConfigError(f"job {job_id} already ended ({job['state']})")
    FlinkRest(rest).cancel(job_id)
    deadline = time.monotonic() + args.timeout
    state = job["state"]
    while time.monotonic() < deadline:
        state = _known_job(rest, job_id)["state"]
        if state in TERMINAL:
            print(f"{job_id} {state}")
            return 0 if state == "CANCELED" else 1
        time.sleep(0.3)
    raise InfrastructureError(f"job {job_id} still {state} {args.timeout:.0f} s after cancel")
