"""``streaming-agents agents | run | submit | status | savepoint | cancel | fake-llm-config``.

* ``agents`` -- the registry: every agent of every job under ``jobs/``, its version and
  topics, and which agents feed which through a topic.
* ``run JOB`` -- run a job on the local Flink mini-cluster (this process), against a
  Kafka broker; ``--sample N`` writes the job's sample records first, ``--fake-llm``
  answers with the job's scripted fake LLM; ``--bounded`` stops at the input's end.
* ``submit JOB --rest URL`` -- submit a job to a Flink cluster with the ``flink`` CLI of the
  pip-installed PyFlink (``flink run -d -pym ...``).  The job graph is built here, on the
  client; the job package and ``streaming_agents`` are shipped to the workers as a zip
  (``-pyfs``); third-party packages (pydantic, litellm, ...) must be installed on the
  cluster (the image of ``deploy/Dockerfile`` has them) or listed with ``--pyreq``.
* ``status [JOB_ID]``, ``savepoint JOB_ID --dir DIR [--stop]``, ``cancel JOB_ID`` -- the
  cluster's REST API.
* ``fake-llm-config [JOB...]`` -- the fake LLM configuration (JSON) answering the jobs'
  sample data (``python -m streaming_agents.testing.fake_llm --config "$(...)"``).

JOB is a folder under ``jobs/`` (``supply_chain``), its spec name (``supply-chain``) or a
path to a job folder.  Bad arguments and unknown jobs, topics or job ids are user errors
(exit 2); an unreachable cluster or broker, or a failed job, exit 1.

``python -m streaming_agents.cli.jobs_cmd`` is the program ``submit`` hands to
``flink run``: it builds the job's graph in the cluster's context environment.
"""

from __future__ import annotations

import argparse
import json
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

from streaming_agents.errors import ConfigError, InfrastructureError, UserError

__all__ = [
    "REST_ENV",
    "add_job_commands",
    "entry_main",
    "entry_parser",
    "flink_run_command",
    "library_zip",
]

BOOTSTRAP_ENV = "STREAMING_AGENTS_KAFKA_BOOTSTRAP"
MODEL_ENV = "STREAMING_AGENTS_MODEL"
REST_ENV = "STREAMING_AGENTS_FLINK_REST"
FAKE_KEY_ENV = "STREAMING_AGENTS_FAKE_API_KEY"
ENTRY_MODULE = "streaming_agents.cli.jobs_cmd"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SUBMIT_CHECKPOINT_MS = 5000
"""Checkpoint interval of submitted jobs unless ``--checkpoint-ms`` is given: output of the
exactly-once sinks becomes visible at each checkpoint."""
TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED", "SUSPENDED"})


# --------------------------------------------------------------------------- parsers


def _job_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--journal-dir",
        default=None,
        metavar="DIR",
        help="folder of the LLM journal (SQLite); default: $STREAMING_AGENTS_JOURNAL_DIR or tmp",
    )
    parser.add_argument(
        "--capacity", type=int, default=100, metavar="N", help="LLM calls in flight per subtask"
    )
    parser.add_argument("--job-name", default=None, help="Flink job name (default: the job's)")


def _rest_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--rest",
        default=None,
        required=required,
        metavar="URL",
        help=f"the Flink REST API (default: ${REST_ENV}, else http://localhost:8081)",
    )


def add_job_commands(subparsers: Any) -> None:
    """Add the registry, run and cluster commands to the CLI's subparsers.

    Each parser's ``handler`` default is the function to call with the
    parsed arguments; it returns the exit code.
    """
    ag = subparsers.add_parser(
        "agents",
        help="list the agents of every job, their versions and topics",
        description="List every agent declared by the jobs under jobs/ (each job's spec.py): "
        "name, version, job, input and output topics, then the agent-to-agent links "
        "(an agent reading a topic another agent writes).",
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
    _job_arguments(rn)
    rn.add_argument("--fake-llm", action="store_true", help="use the job's scripted fake LLM")
    rn.add_argument("--sample", type=int, default=None, metavar="N", help="write N sample records")
    rn.add_argument("--seed", type=int, default=None, help="seed of the sample records")
    rn.add_argument(
        "--create-topics", action="store_true", help="create the job's topics if missing"
    )
    rn.set_defaults(handler=run_job)

    sb = subparsers.add_parser(
        "submit",
        help="submit a job to a Flink cluster (flink run)",
        description="Build JOB's graph here and submit it, detached, to the Flink cluster whose "
        "REST API is --rest, with the `flink` CLI of the pip-installed PyFlink. The job "
        "package and streaming_agents are shipped as a zip (-pyfs); their third-party "
        "dependencies must be installed on the cluster (deploy/Dockerfile) or given with "
        "--pyreq. The API key variable must be set in the TaskManagers' environment. "
        "Prints the job id.",
    )
    sb.add_argument("job", metavar="JOB")
    _rest_argument(sb)
    _job_arguments(sb)
    sb.add_argument("--savepoint", default=None, metavar="PATH", help="restore from a savepoint")
    sb.add_argument(
        "--allow-non-restored-state", action="store_true", help="skip state of removed operators"
    )
    sb.add_argument("--pyreq", default=None, metavar="FILE", help="requirements.txt for workers")
    sb.add_argument(
        "--no-ship", action="store_true", help="do not ship streaming_agents (cluster has it)"
    )
    sb.add_argument("--sample", type=int, default=None, metavar="N", help="write N sample records")
    sb.add_argument("--seed", type=int, default=None, help="seed of the sample records")
    sb.add_argument(
        "--create-topics", action="store_true", help="create the job's topics if missing"
    )
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
    return 0


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


def _topic_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        role, sep, name = pair.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise ConfigError(f"--topic needs ROLE=NAME, got {pair!r}")
        overrides[role.strip()] = name.strip()
    return overrides


def _bootstrap(args: argparse.Namespace) -> str:
    return str(args.bootstrap or os.environ.get(BOOTSTRAP_ENV) or "localhost:9092")


def _check_numbers(args: argparse.Namespace) -> None:
    if args.capacity < 1:
        raise ConfigError(f"--capacity must be at least 1, got {args.capacity}")
    if args.parallelism is not None and args.parallelism < 1:
        raise ConfigError(f"--parallelism must be at least 1, got {args.parallelism}")
    if args.checkpoint_ms is not None and args.checkpoint_ms < 10:
        raise ConfigError(f"--checkpoint-ms must be at least 10, got {args.checkpoint_ms}")
    sample = getattr(args, "sample", None)
    if sample is not None and not 0 <= sample <= 100_000:
        raise ConfigError(f"--sample must be between 0 and 100000, got {sample}")


def _model_spec(args: argparse.Namespace, *, check_key: bool) -> Any:
    from streaming_agents.agent import ModelSpec

    model = args.model or os.environ.get(MODEL_ENV)
    if not model:
        hint = " or --fake-llm" if hasattr(args, "fake_llm") else ""
        raise ConfigError(f"no model: give --model MODEL (or set {MODEL_ENV}){hint}")
    if args.api_key_env and check_key and not os.environ.get(args.api_key_env):
        raise ConfigError(f"--api-key-env {args.api_key_env}: that variable is not set")
    if check_key and not args.api_base and not args.api_key_env:
        from streaming_agents.cli.demo import _check_model_env

        _check_model_env(model)
    return ModelSpec(model=model, api_base=args.api_base, api_key_env=args.api_key_env)


def _journal(args: argparse.Namespace, job_name: str) -> Any:
    if not args.journal_dir:
        return None
    from streaming_agents.llm.journal import SqliteJournal

    folder = Path(args.journal_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return SqliteJournal(folder / f"{job_name}.sqlite")


def _prepare_topics(args: argparse.Namespace, entry: Any, topics: dict[str, str]) -> None:
    """``--create-topics`` / ``--sample N``: create the topics, write the sample records."""
    if not args.create_topics and args.sample is None:
        return
    from streaming_agents.testing.kafka import create_topics, produce

    bootstrap = _bootstrap(args)
    create_topics(bootstrap, sorted(set(topics.values())))
    _progress(f"topics ready on {bootstrap}: {', '.join(sorted(set(topics.values())))}")
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
        produce(bootstrap, topic, batch)
        _progress(f"wrote {len(batch)} sample records to {topic!r}")


def run_job(args: argparse.Namespace) -> int:
    from streaming_agents.registry import JobContext, load_job

    _check_numbers(args)
    entry = load_job(args.job)
    spec = entry.spec
    topics = spec.resolve_topics(_topic_overrides(args.topic))
    if args.fake_llm and (args.model or args.api_base or args.api_key_env):
        raise ConfigError("--fake-llm cannot be combined with --model, --api-base, --api-key-env")
    if args.fake_llm and spec.fake_rules is None:
        raise ConfigError(f"job {spec.name!r} has no fake LLM rules")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "WARNING")
    model = None if args.fake_llm else _model_spec(args, check_key=True)
    fake = None
    try:
        if args.fake_llm:
            from streaming_agents.agent import ModelSpec
            from streaming_agents.testing.fake_llm import FakeLLM

            assert spec.fake_rules is not None
            os.environ.setdefault(FAKE_KEY_ENV, "sk-fake-local-key")
            fake = FakeLLM({"rules": spec.fake_rules(), "latency_ms": 5}).start()
            _progress(f"fake LLM {fake.base_url} (the rules of {spec.name})")
            model = ModelSpec(
                model=f"openai/{spec.name}-fake", api_base=fake.base_url, api_key_env=FAKE_KEY_ENV
            )
        _prepare_topics(args, entry, topics)
        from streaming_agents.runtime.environment import local_env

        env = local_env(
            parallelism=args.parallelism or 1,
            checkpoint_interval_ms=args.checkpoint_ms or 2000,
            state_backend=args.state_backend or "hashmap",
            checkpoint_dir=args.checkpoint_dir,
        )
        assert model is not None
        ctx = JobContext(
            bootstrap=_bootstrap(args),
            model=model,
            topics=topics,
            bounded=args.bounded,
            group_id=args.group_id,
            journal=_journal(args, spec.name),
            capacity=args.capacity,
        )
        spec.build(env, ctx)
        name = args.job_name or spec.name
        mode = "bounded" if args.bounded else "until Ctrl-C"
        _progress(f"running {name} on the local Flink mini-cluster ({mode})")
        started = time.monotonic()
        try:
            env.execute(name)
        except Exception as exc:  # py4j wraps the Java failure; keep its root cause
            raise InfrastructureError(f"the Flink job failed: {_root_cause(exc)}") from exc
        _progress(f"{name} finished in {time.monotonic() - started:.1f} s")
    finally:
        if fake is not None:
            fake.stop()
    return 0


def _root_cause(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    causes = [ln for ln in lines if ln.startswith("Caused by:")]
    return (causes[-1] if causes else (lines[0] if lines else type(exc).__name__))[:500]


# --------------------------------------------------------------------------- submit


def library_zip(job_folder: Path, target: Path, *, ship_library: bool = True) -> Path:
    """A zip for ``-pyfs``: the job package under its folder name (+ ``streaming_agents``)."""
    import streaming_agents

    folders = [job_folder]
    if ship_library:
        folders.append(Path(streaming_agents.__file__).resolve().parent)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in folders:
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder.parent)
                if "__pycache__" in rel.parts or not path.is_file():
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
    cmd += ["-pyfs", str(pyfs), "-pym", ENTRY_MODULE, *entry_args]
    return cmd


def _entry_args(args: argparse.Namespace, job_folder: Path) -> list[str]:
    # `flink run` parses options anywhere on its command line and matches prefixes of its
    # own long options (--job would be taken for --jobmanager): keep these names distinct.
    out = ["--job-dir", str(job_folder), "--bootstrap", _bootstrap(args)]
    out += ["--model", str(args.model or os.environ.get(MODEL_ENV) or "")]
    for flag, value in (
        ("--api-base", args.api_base),
        ("--api-key-env", args.api_key_env),
        ("--checkpoint-ms", args.checkpoint_ms),
        ("--checkpoint-dir", args.checkpoint_dir),
        ("--state-backend", args.state_backend),
        ("--group-id", args.group_id),
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
    return out


def run_submit(args: argparse.Namespace) -> int:
    from streaming_agents.registry import load_job
    from streaming_agents.runtime.environment import jars_dir, java_home, repo_root

    _check_numbers(args)
    rest = _rest_url(args)
    entry = load_job(args.job)
    topics = entry.spec.resolve_topics(_topic_overrides(args.topic))
    _model_spec(args, check_key=False)  # the key is read on the TaskManagers, not here
    if args.pyreq and not Path(args.pyreq).is_file():
        raise ConfigError(f"--pyreq {args.pyreq}: no such file")
    if args.journal_dir:
        args.journal_dir = str(Path(args.journal_dir).expanduser().resolve())
    _rest_call(rest, "/overview")  # fail early and clearly when the cluster is not there
    _prepare_topics(args, entry, topics)
    workdir = Path(tempfile.mkdtemp(prefix="sa-submit-"))
    try:
        pyfs = library_zip(entry.path, workdir / f"{entry.name}.zip", ship_library=not args.no_ship)
        cmd = flink_run_command(
            rest,
            _entry_args(args, entry.path),
            pyfs,
            savepoint=args.savepoint,
            allow_non_restored=args.allow_non_restored_state,
            pyreq=args.pyreq,
            parallelism=args.parallelism,
        )
        (workdir / "log").mkdir()
        env = {
            **os.environ,
            "FLINK_LOG_DIR": str(workdir / "log"),
            "JAVA_HOME": java_home(),
            "SA_JARS_DIR": str(jars_dir()),
            "SA_REPO_ROOT": str(repo_root()),
            "LITELLM_LOCAL_MODEL_COST_MAP": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
        }
        _progress(f"submitting {entry.spec.name} to {rest}")
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
    _progress(f"job {found.group(1)} submitted; `streaming-agents status {found.group(1)}`")
    return 0


def _tail(text: str, lines: int) -> str:
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


# --------------------------------------------------------------------------- REST


def _rest_call(rest: str, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{rest}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=15) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        if exc.code == 404:
            raise ConfigError(f"not found on the cluster: {method} {path} ({detail})") from exc
        if exc.code == 400:
            raise ConfigError(f"the cluster rejected {method} {path}: {detail}") from exc
        raise InfrastructureError(f"Flink REST {method} {path}: HTTP {exc.code} {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise InfrastructureError(f"no Flink REST API at {rest} ({exc})") from exc
    return json.loads(raw) if raw else None


def _job_id(value: str) -> str:
    if not JOB_ID.match(value):
        raise ConfigError(f"{value!r} is not a Flink job id (32 hex digits)")
    return value


def _known_job(rest: str, job_id: str) -> dict[str, Any]:
    try:
        job: dict[str, Any] = _rest_call(rest, f"/jobs/{job_id}")
    except ConfigError:
        raise ConfigError(f"no job {job_id} on the cluster at {rest}") from None
    return job


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
    jobs = _rest_call(rest, "/jobs/overview")["jobs"]
    print(f"{'JOB ID':<32}  {'STATE':<10}  {'STARTED':<19}  NAME")
    for job in sorted(jobs, key=lambda j: -int(j.get("start-time", 0))):
        started = _when(job.get("start-time"))
        print(f"{job['jid']:<32}  {job['state']:<10}  {started:<19}  {job['name']}")
    if not jobs:
        _progress(f"no jobs on {rest}")
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
    target = _target_dir(args.dir)
    if args.stop:
        body = {"targetDirectory": target, "drain": False, "formatType": "CANONICAL"}
        trigger = _rest_call(rest, f"/jobs/{job_id}/stop", "POST", body)
    else:
        body = {"target-directory": target, "cancel-job": False, "formatType": "CANONICAL"}
        trigger = _rest_call(rest, f"/jobs/{job_id}/savepoints", "POST", body)
    request_id = trigger["request-id"]
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        status = _rest_call(rest, f"/jobs/{job_id}/savepoints/{request_id}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation") or {}
            if "failure-cause" in operation:
                cause = operation["failure-cause"].get("stack-trace", "")
                raise InfrastructureError(f"savepoint failed: {_root_cause(Exception(cause))}")
            print(operation["location"])
            return 0
        time.sleep(0.5)
    raise InfrastructureError(f"savepoint of {job_id} not done after {args.timeout:.0f} s")


def run_cancel(args: argparse.Namespace) -> int:
    rest = _rest_url(args)
    job_id = _job_id(args.job_id)
    job = _known_job(rest, job_id)
    if job["state"] in TERMINAL:
        raise ConfigError(f"job {job_id} already ended ({job['state']})")
    _rest_call(rest, f"/jobs/{job_id}?mode=cancel", "PATCH")
    deadline = time.monotonic() + args.timeout
    state = job["state"]
    while time.monotonic() < deadline:
        state = _known_job(rest, job_id)["state"]
        if state in TERMINAL:
            print(f"{job_id} {state}")
            return 0 if state == "CANCELED" else 1
        time.sleep(0.3)
    raise InfrastructureError(f"job {job_id} still {state} {args.timeout:.0f} s after cancel")


def _progress(message: str) -> None:
    print(f"streaming-agents: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- flink run entry


def entry_parser() -> argparse.ArgumentParser:
    """The arguments of the ``flink run`` entry point (also used by deploy/run_job.py)."""
    parser = argparse.ArgumentParser(prog=f"python -m {ENTRY_MODULE}")
    parser.add_argument("--job-dir", required=True, metavar="PATH")
    _job_arguments(parser)
    return parser


def entry_main(argv: Sequence[str] | None = None) -> int:
    """The program ``flink run -pym streaming_agents.cli.jobs_cmd`` executes (client side).

    Builds the job's graph in the cluster's context environment and submits it.
    A user error prints ``streaming-agents: error: ...`` (``submit`` reports it).
    """
    from streaming_agents.registry import JobContext, load_job

    args = entry_parser().parse_args(None if argv is None else list(argv))
    try:
        _check_numbers(args)
        entry = load_job(args.job_dir)
        spec = entry.spec
        topics = spec.resolve_topics(_topic_overrides(args.topic))
        model = _model_spec(args, check_key=False)
        from streaming_agents.runtime.environment import local_env

        env = local_env(
            parallelism=args.parallelism or 1,
            checkpoint_interval_ms=args.checkpoint_ms or SUBMIT_CHECKPOINT_MS,
            state_backend=args.state_backend or "rocksdb",
            checkpoint_dir=args.checkpoint_dir,
        )
        ctx = JobContext(
            bootstrap=_bootstrap(args),
            model=model,
            topics=topics,
            bounded=args.bounded,
            group_id=args.group_id,
            journal=_journal(args, spec.name),
            capacity=args.capacity,
        )
        spec.build(env, ctx)
        env.execute(args.job_name or spec.name)
    except UserError as exc:
        print(f"streaming-agents: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(entry_main())
