"""``streaming-agents submit | status | savepoint | cancel`` against the standalone cluster,
and the CLI's user errors (exit 2) and runtime failures (exit 1) without one.

The cluster test submits two jobs: the registered catalog normalisation job, by name and
unbounded (RUNNING, outputs, a savepoint, then cancel), and, by path, a small job written
into a temporary folder that does not ship itself by value, so its workers can only import
it from the zip ``submit`` ships with ``-pyfs`` (bounded: it ends FINISHED).
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.cli.cluster_cmd import flink_run_command, library_zip
from streaming_agents.cli.jobs_cmd import ENTRY_MODULE, entry_parser
from streaming_agents.cli.main import main
from streaming_agents.registry import load_job
from streaming_agents.testing.cluster import FlinkCluster
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import consume_committed

API_KEY_ENV = "FAKE_LLM_API_KEY"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# Long options of `flink run` (flink run --help); commons-cli also accepts unique prefixes.
FLINK_RUN_OPTIONS = (
    "--allowNonRestoredState",
    "--claimMode",
    "--class",
    "--classpath",
    "--detached",
    "--executor",
    "--fromSavepoint",
    "--jarfile",
    "--jobmanager",
    "--parallelism",
    "--pyArchives",
    "--pyClientExecutable",
    "--pyExecutable",
    "--pyFiles",
    "--pyModule",
    "--pyPythonPath",
    "--pyRequirements",
    "--python",
    "--restoreMode",
    "--shutdownOnAttachedExit",
    "--target",
    "--yarnapplicationId",
    "--zookeeperNamespace",
)

PLAIN_JOB = {
    "__init__.py": '"""A job that is not shipped by value: workers import it from -pyfs."""\n',
    "job.py": """
        import json
        import sys

        import streaming_agents
        from streaming_agents import Agent, LLMRequest, Memory


        def key_of(raw):
            return str(json.loads(raw)["k"])


        def step(event, memory):
            return LLMRequest(messages=({"role": "user", "content": f"echo {event['k']}"},))


        def reduce(event, memory, result):
            here = sys.modules[__name__].__file__
            out = {"reply": result.content, "job_file": here, "lib_file": streaming_agents.__file__}
            return memory.model_copy(update={"turn_count": memory.turn_count + 1}), [out]


        def build(env, ctx):
            from pyflink.common import Types, WatermarkStrategy

            from streaming_agents import run_agent
            from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source

            agent = Agent(
                name="plain-echo", version="1", model=ctx.model, memory=Memory,
                step_fn=step, reduce_fn=reduce,
            )
            source = kafka_source(ctx.bootstrap, ctx.topic("in"), "plain", bounded=ctx.bounded)
            events = env.from_source(source, WatermarkStrategy.no_watermarks(), "in")
            out = run_agent(events.key_by(key_of, key_type=Types.STRING()), agent,
                            journal=ctx.journal)
            sink = exactly_once_sink(ctx.bootstrap, ctx.topic("out"), "plain-" + ctx.topic("out"))
            out.sink_to(sink)
        """,
    "spec.py": """
        from streaming_agents.registry import AgentDecl, JobSpec, SampleRecord

        from .job import build

        JOB = JobSpec(
            name="plain-echo",
            description="echo, imported by the workers from the shipped zip",
            topics={"in": "plain-in", "out": "plain-out"},
            agents=(AgentDecl("plain-echo", "1", ("in",), ("out",)),),
            build=build,
            sample=lambda n, seed: [
                SampleRecord("in", f"k{i}", '{"k": "k%d"}' % i) for i in range(n)
            ],
        )
        """,
}


def write_plain_job(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, text in PLAIN_JOB.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


def assert_taskmanager_has_api_key(cluster: FlinkCluster) -> None:
    """Agents read the key in the TaskManager process: the variable must be in its env."""
    for pid in cluster._pids("taskexecutor"):
        names = [
            e.split(b"=", 1)[0] for e in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        ]
        if API_KEY_ENV.encode() not in names:
            pytest.fail(
                f"TaskManager {pid} has no {API_KEY_ENV}: the reused cluster was started "
                "without it; stop it (`python -m streaming_agents.testing.cluster down`)"
            )


def product(value: str) -> dict[str, Any] | None:
    """The catalog sample record as a product, or None for the malformed ones."""
    try:
        record = json.loads(value)
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("title") else None


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def wait_state(
    rest: str, job_id: str, states: set[str], capsys: pytest.CaptureFixture[str], timeout_s: float
) -> str:
    """Poll ``status JOB_ID`` until the job is in one of ``states``; returns the state."""
    deadline, state = time.monotonic() + timeout_s, "?"
    while time.monotonic() < deadline:
        code, out, err = cli(["status", job_id, "--rest", rest], capsys)
        assert code == 0, err
        state = out.split()[1]
        if state in states:
            return state
        assert state not in {"FAILED", "CANCELED", "FINISHED"}, out
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {state} after {timeout_s} s")


# --------------------------------------------------------------------------- without a cluster


def test_entry_arguments_never_collide_with_flink_run_options(tmp_path: Path) -> None:
    """`flink run` parses its options anywhere and by prefix (--job was --jobmanager)."""
    from streaming_agents.cli.cluster_cmd import _entry_args
    from streaming_agents.cli.main import build_parser

    argv = "submit supply_chain --model m --api-base u --api-key-env K --checkpoint-ms 10"
    argv += " --checkpoint-dir d --state-backend rocksdb --group-id g --journal-dir j"
    argv += " --job-name n --topic dlq=x --bounded --parallelism 2 --capacity 3"
    args = build_parser().parse_args(argv.split())
    flags = [a for a in _entry_args(args, tmp_path) if a.startswith("--")]
    assert len(flags) == 14 and "--parallelism" not in flags  # that one goes to `flink run -p`
    for flag in flags:
        clashes = [o for o in FLINK_RUN_OPTIONS if o.startswith(flag)]
        assert not clashes, (flag, clashes)
        assert any(flag in a.option_strings for a in entry_parser()._actions), flag
    cmd = flink_run_command("http://jm:8082", ["--job-dir", "/x"], tmp_path / "a.zip")
    assert cmd[1:3] == ["run", "-t"] and "-Drest.address=jm" in cmd and "-Drest.port=8082" in cmd
    assert cmd[-4:] == ["-pym", ENTRY_MODULE, "--job-dir", "/x"] and "-d" in cmd


def test_library_zip_holds_the_job_and_the_library(tmp_path: Path) -> None:
    import zipfile

    entry = load_job("catalog_normalisation")
    names = zipfile.ZipFile(library_zip(entry.path, tmp_path / "job.zip")).namelist()
    assert "catalog_normalisation/job.py" in names and "catalog_normalisation/spec.py" in names
    assert "streaming_agents/__init__.py" in names and "streaming_agents/cli/jobs_cmd.py" in names
    assert not [n for n in names if "__pycache__" in n]
    only_job = zipfile.ZipFile(library_zip(entry.path, tmp_path / "j.zip", ship_library=False))
    assert not [n for n in only_job.namelist() if n.startswith("streaming_agents/")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "nope", "--model", "m"], "no job 'nope'"),
        (["submit", "supply_chain", "--model", "m", "--topic", "bogus=x"], "no topic role"),
        (["submit", "supply_chain", "--model", "m", "--topic", "noequals"], "ROLE=NAME"),
        (["submit", "supply_chain", "--model", "m", "--rest", "ftp://x"], "http://HOST:PORT"),
        (["submit", "supply_chain", "--model", "m", "--capacity", "0"], "--capacity"),
        (["status", "1234", "--rest", "http://127.0.0.1:9"], "not a Flink job id"),
        (["cancel", "xyz", "--rest", "http://127.0.0.1:9"], "not a Flink job id"),
        (["savepoint", "abc"], "--dir"),
        (["run", "catalog_normalisation"], "no model"),
        (["run", "catalog_normalisation", "--fake-llm", "--model", "m"], "cannot be combined"),
    ],
)
def test_user_errors_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STREAMING_AGENTS_MODEL", raising=False)
    code, _out, err = cli(argv, capsys)
    assert code == 2, err
    assert message in err


def test_unreachable_cluster_is_a_runtime_failure(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = cli(["status", "--rest", "http://127.0.0.1:9"], capsys)
    assert code == 1
    assert err.startswith("streaming-agents: failed: no Flink REST API at http://127.0.0.1:9")
    code, _out, err = cli(
        ["submit", "supply_chain", "--model", "m", "--rest", "http://127.0.0.1:9"], capsys
    )
    assert code == 1 and "no Flink REST API" in err


# --------------------------------------------------------------------------- on the cluster


@pytest.mark.cluster
def test_submit_status_savepoint_cancel(
    flink_cluster: FlinkCluster,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert_taskmanager_has_api_key(flink_cluster)
    rest = flink_cluster.rest_url
    catalog = load_job("catalog_normalisation").module
    fake_llm.configure({"rules": catalog.fake_rules()})
    common = ["--rest", rest, "--bootstrap", kafka_bootstrap, "--model", "openai/fake"]
    common += ["--api-base", fake_llm.base_url, "--api-key-env", API_KEY_ENV]
    common += ["--journal-dir", str(tmp_path / "journal"), "--checkpoint-ms", "1000"]

    # 1. the registered catalog job, by name, unbounded
    topics = {role: topic_factory(f"sub-{role}") for role in ("products", "normalised", "dlq")}
    name = f"catalog-submit-{topics['products'][-10:]}"
    started = time.monotonic()
    argv = ["submit", "catalog_normalisation", *common, "--sample", "10", "--job-name", name]
    for role, topic in topics.items():
        argv += ["--topic", f"{role}={topic}"]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    catalog_id = out.strip()
    assert JOB_ID.match(catalog_id), out

    # 2. a job by path that only the shipped zip makes importable, bounded
    plain = write_plain_job(tmp_path / "plain_echo_job")
    plain_in, plain_out = topic_factory("plain-in"), topic_factory("plain-out")
    argv = ["submit", str(plain), *common, "--sample", "3", "--bounded"]
    argv += ["--topic", f"in={plain_in}", "--topic", f"out={plain_out}"]
    # Only the zip (job + library): the catalog job above already ships the dependencies
    # (the default, --ship deps); the workers here have them anyway.
    argv += ["--ship", "library"]
    code, out, err = cli(argv, capsys)
    assert code == 0, err
    plain_id = out.strip()
    print(f"two submissions: {time.monotonic() - started:.1f} s")

    assert wait_state(rest, catalog_id, {"RUNNING"}, capsys, 120) == "RUNNING"
    code, out, _ = cli(["status", "--rest", rest], capsys)
    listed = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert listed[catalog_id][1] == "RUNNING" and listed[catalog_id][-1] == name

    valid = [p for _, v in catalog.generate(10, 42) if (p := product(v))]
    got = consume_committed(
        kafka_bootstrap, topics["normalised"], expected=len(valid), timeout_s=180
    )
    assert len(got) == len(valid)
    assert {json.loads(m.value())["agent"] for m in got} == {"catalog-normaliser"}

    assert wait_state(rest, plain_id, {"FINISHED"}, capsys, 180) == "FINISHED"
    rows: list[dict[str, Any]] = [
        json.loads(m.value())["output"]
        for m in consume_committed(kafka_bootstrap, plain_out, expected=3, timeout_s=60)
    ]
    assert sorted(r["reply"] for r in rows) == [f"echo[n=1]: echo k{i}" for i in range(3)]
    # the worker imported the job from the files shipped with the job (-pyfs), not from disk
    assert all("plain_echo_job/job.py" in r["job_file"] for r in rows)
    assert all(str(plain) not in r["job_file"] for r in rows), rows[0]

    code, out, err = cli(
        ["savepoint", catalog_id, "--dir", str(tmp_path / "sp"), "--rest", rest], capsys
    )
    assert code == 0, err
    location = out.strip()
    assert location.startswith("file:") and Path(location.removeprefix("file:")).exists()

    code, out, err = cli(["cancel", catalog_id, "--rest", rest], capsys)
    assert (code, out.strip()) == (0, f"{catalog_id} CANCELED"), err
    code, out, _ = cli(["status", catalog_id, "--rest", rest], capsys)
    assert out.split()[1] == "CANCELED"
    code, _out, err = cli(["cancel", catalog_id, "--rest", rest], capsys)
    assert code == 2 and "already ended (CANCELED)" in err
    print(f"cluster CLI test: {time.monotonic() - started:.1f} s")
