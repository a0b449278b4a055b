"""The package as a pip user gets it: the wheel, a fresh virtualenv, an empty folder, new processes.

Nothing here runs from the checkout: the wheel of this checkout is installed into a new
virtualenv (tests/installed_support.py), every command runs with that venv's Python in an
empty folder outside the repository, with none of the checkout's settings (no
``SA_JARS_DIR``, no ``PYTHONPATH``).  The Kafka connector must come from the wheel, the
jobs from the wheel, the broker's jars from the user cache.  Checked:

* the README's DataStream example, pasted into a file and run as ``python app.py`` against
  a local broker and the fake LLM (the test stops it once every reply is committed);
* the README's "own environment" snippet: ``add_connector_jars`` loads the connector;
* ``streaming-agents agents`` and ``streaming-agents demo``;
* ``streaming-agents replay`` as a new process (its Kafka source used to be built before
  the connector jar was loaded: "Could not found the Java class ...KafkaSource.builder");
* every command's ``--help``, and ``streaming-agents sql --check`` of a script.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from installed_support import Installed, install, readme_block

from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import LocalKafka, consume_committed, create_topics, produce

FAKE_KEY = "sk-fake-wheel-test-key"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    started = time.monotonic()
    result = install(tmp_path_factory.mktemp("wheel"))
    print(f"wheel built and installed in {time.monotonic() - started:.1f} s")
    return result


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A broker of this module only: the README example uses fixed topic names."""
    kafka = LocalKafka(Path(tempfile.mkdtemp(prefix="sa-wheel-kafka-")))
    kafka.start()
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()
        shutil.rmtree(kafka.workdir, ignore_errors=True)


def _run(installed: Installed, args: list[str], timeout: float, **env: str) -> tuple[int, str, str]:
    done = subprocess.run(
        args,
        cwd=installed.work,
        env=installed.env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def test_the_wheel_carries_connector_jar_jobs_and_types(installed: Installed) -> None:
    code, out, err = _run(
        installed,
        [
            str(installed.python),
            "-c",
            "import streaming_agents, streaming_agents.registry as r;"
            "print(streaming_agents.__file__); print(r.jobs_dir());"
            "print(streaming_agents.connector_jar_uris())",
        ],
        timeout=60,
    )
    assert code == 0, err
    package, jobs, uris = out.splitlines()
    assert package.startswith(str(installed.venv)), package
    assert jobs.startswith(str(installed.venv)) and jobs.endswith("_jobs"), jobs
    assert str(installed.venv) in uris and "flink-sql-connector-kafka" in uris, uris
    assert Path(package).with_name("py.typed").is_file()


def test_agents_lists_the_shipped_jobs(installed: Installed) -> None:
    code, out, err = _run(installed, [str(installed.cli), "agents", "--json"], timeout=60)
    assert code == 0, err
    names = {a["job"] for a in json.loads(out)["agents"]}
    assert {"claims_triage", "claims_compliance", "supply_chain"} <= names, names


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.stderr is not None
    return proc.stderr.read()[-3000:]


def test_readme_datastream_example_runs_as_pasted(
    installed: Installed, broker: str, fake_llm: FakeLLM
) -> None:
    app = installed.work / "app.py"
    app.write_text(readme_block("## An agent on a DataStream"))
    create_topics(broker, ["tickets", "replies", "replies-dlq"])
    customers = [f"c-{i % 3}" for i in range(6)]
    tickets = [json.dumps({"customer": c, "text": f"ticket {i}"}) for i, c in enumerate(customers)]
    produce(broker, "tickets", [(None, t) for t in tickets])
    env = installed.env(
        KAFKA_BOOTSTRAP=broker, OPENAI_API_KEY=FAKE_KEY, OPENAI_BASE_URL=fake_llm.base_url
    )
    proc = subprocess.Popen(
        [str(installed.python), str(app)],
        cwd=installed.work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    replies: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + 150
        while len(replies) < len(tickets) and time.monotonic() < deadline:
            assert proc.poll() is None, f"app.py exited {proc.returncode}: {_stop(proc)}"
            messages = consume_committed(broker, "replies", timeout_s=5, idle_s=1.0)
            replies = [json.loads(m.value()) for m in messages]
    finally:
        log = _stop(proc)
    assert len(replies) == len(tickets), log
    assert sorted(str(r["key"]) for r in replies) == sorted(customers)


def test_readme_own_environment_snippet_loads_the_connector(installed: Installed) -> None:
    snippet = readme_block("## Use it in your own project")
    check = (
        "\nfrom streaming_agents.connectors.kafka import kafka_source\n"
        "kafka_source('localhost:9', 'topic', 'group')  # needs the jar in this JVM\n"
        "add_connector_jars(env)  # a second call adds nothing\n"
        "from pyflink.common import Configuration\n"
        "from pyflink.util.java_utils import get_j_env_configuration\n"
        "conf = get_j_env_configuration(env._j_stream_execution_environment)\n"
        "print(Configuration.parse_list_value(conf.getString('pipeline.jars', '')))\n"
    )
    (installed.work / "own_env.py").write_text(snippet + check)
    code, out, err = _run(installed, [str(installed.python), "own_env.py"], timeout=120)
    assert code == 0, err[-3000:]
    jars = ast.literal_eval(out.strip().splitlines()[-1])
    assert len(jars) == 1 and jars[0].startswith(f"file://{installed.venv}"), jars


def test_demo_from_an_empty_folder(installed: Installed) -> None:
    code, out, err = _run(installed, [str(installed.cli), "demo", "--events", "8"], timeout=240)
    assert code == 0, err[-3000:]
    summary = re.search(r"^summary: (\d+) claims -> .* dead_lettered=(\d+)", out, re.M)
    assert summary and summary.group(1) == "8", out
    assert list((installed.cache / "jars" / "kafka").glob("kafka_2.13-*.jar")), "broker not cached"


AGENT_MODULE = """
import os

from streaming_agents import Agent, MemoryPolicy, ModelSpec

agent = Agent(
    name="support", version="2",
    model=ModelSpec(
        model="openai/support", api_base=os.environ["FAKE_BASE"], api_key_env="FAKE_KEY"
    ),
    system_prompt="You are a helpful support agent.",
    prompt="Customer {customer} says: {text}",
    policy=MemoryPolicy(max_turns=20),
)
"""


def test_replay_in_a_new_process(installed: Installed, broker: str, fake_llm: FakeLLM) -> None:
    (installed.work / "support_agent.py").write_text(AGENT_MODULE)
    create_topics(broker, ["history"])
    events = [
        json.dumps({"key": f"k{i % 4}", "customer": f"k{i % 4}", "text": f"hi {i}"})
        for i in range(10)
    ]
    produce(broker, "history", [(None, e) for e in events])
    code, out, err = _run(
        installed,
        [
            str(installed.cli), "replay", "--agent", "support_agent:agent", "--topic", "history",
            "--shadow-topic", "history-shadow", "--bootstrap", broker, "--no-progress",
        ],
        timeout=240,
        FAKE_BASE=fake_llm.base_url,
        FAKE_KEY=FAKE_KEY,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert "KafkaSource" not in err
    shadow = [
        json.loads(m.value()) for m in consume_committed(broker, "history-shadow", timeout_s=20)
    ]
    assert len(shadow) == len(events), (out, err[-2000:])


USER_CODE = """
import streaming_agents
from streaming_agents import Agent, ModelSpec, add_connector_jars, run_agent

reveal_type(run_agent)
run_agent("not a stream", Agent(name="a", version="1", model=ModelSpec(model="m")), capacity="x")
"""


def test_a_users_mypy_sees_the_typed_lazy_exports(installed: Installed) -> None:
    (installed.work / "user_code.py").write_text(USER_CODE)
    code, out, err = _run(
        installed,
        [str(installed.python), "-m", "mypy", "--no-incremental", "user_code.py"],
        timeout=180,
    )
    assert "def (keyed: " in out and "agent: streaming_agents.agent.Agent[Any]" in out, out
    assert 'Argument "capacity" to "run_agent" has incompatible type "str"' in out, out
    assert code == 1, out + err


def test_every_command_starts_from_an_empty_folder(installed: Installed) -> None:
    # each command parses its options and imports what it needs from the wheel alone
    code, out, err = _run(installed, [str(installed.cli), "--help"], timeout=60)
    assert code == 0, err
    listed = out.split("COMMAND", 2)[-1]
    commands = re.findall(r"^ {4}([a-z][a-z-]+)", listed, flags=re.MULTILINE)
    assert {"demo", "run", "submit", "replay", "shadow", "promote", "history", "sql"} <= set(
        commands
    ), commands
    for command in commands:
        code, out, err = _run(installed, [str(installed.cli), command, "--help"], timeout=60)
        assert code == 0 and out.startswith("usage: streaming-agents"), (command, err[-2000:])
        assert "Traceback" not in err, (command, err[-2000:])
    script = installed.work / "check.sql"
    shutil.copy(Path(__file__).resolve().parent / "sql_scripts" / "hostile_json.sql", script)
    variables = ["bootstrap=localhost:9092", "events_topic=e", "outs_topic=o", "txn_prefix=t"]
    args = [str(installed.cli), "sql", script.name, "--check"]
    for pair in [*variables, "api_base=http://localhost:1/v1"]:
        args += ["--var", pair]
    code, out, err = _run(installed, args, timeout=120)
    assert code == 0 and out.rstrip().endswith("check.sql: OK"), (out[-2000:], err[-2000:])
    script.unlink()
