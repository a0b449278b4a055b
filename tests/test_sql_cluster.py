"""``streaming-agents sql SCRIPT --rest HOST:PORT`` on a cluster whose workers lack our deps.

A private cluster (free ports, own run folder; tests/bare_workers_support.py) runs its
TaskManager's Python from a virtualenv with apache-flink only: no litellm, pydantic,
openai, aiohttp nor streaming_agents.  The SQL runner, run as a new process from a folder
outside the repo, must ship what they lack (``--ship deps``) and run the script's job
there: a Kafka JSON table (decoded safely, bad records dead-lettered), an agent through
the fake LLM, an exactly-once sink.  An unreachable cluster is one line and exit 1.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from bare_workers_support import BareWorkerCluster, bare_worker_venv

from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import OUTPUT, Case, create_corpus_topic, produce_cases
from streaming_agents.testing.kafka import consume_committed, free_port
from tests.test_sql_cli import run_sql_cli

SCRIPT = Path(__file__).resolve().parent / "sql_scripts" / "hostile_json.sql"
KEY = "sk-sql-bare-worker-key"


@pytest.fixture(scope="module")
def sql_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareWorkerCluster]:
    base = tmp_path_factory.mktemp("sql-bare")
    python = bare_worker_venv(base / "worker-venv")
    cluster = BareWorkerCluster(base / "run", python)
    cluster.extra_env = {"FAKE_LLM_API_KEY": KEY}  # the API key lives on the workers
    (base / "run").mkdir()
    cluster.up_outside()
    try:
        yield cluster
    finally:
        cluster.down()


def _cases() -> list[Case]:
    good = [
        Case(f"valid {i}", json.dumps({"k": f"c{i}", "seq": i}).encode(), OUTPUT) for i in range(4)
    ]
    bad = [
        Case("tombstone", None, "malformed event"),
        Case("invalid UTF-8", b'\xff{"k": "x"}', "malformed event"),
        Case("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, "malformed event"),
        Case("seq a word", b'{"k": "x", "seq": "abc"}', "type mismatch"),
    ]
    return [case for pair in zip(bad, good, strict=True) for case in pair]


@pytest.mark.cluster
def test_sql_script_runs_on_a_cluster_whose_workers_lack_the_dependencies(
    sql_cluster: BareWorkerCluster, kafka_bootstrap: str, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, outs = f"sql-bare-in-{suffix}", f"sql-bare-out-{suffix}"
    dlq = f"{topic}.dead-letters"
    for name in (topic, outs, dlq):
        create_corpus_topic(kafka_bootstrap, name)
    cases = _cases()
    produce_cases(kafka_bootstrap, topic, cases)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    rest = sql_cluster.rest_url.removeprefix("http://")
    started = time.monotonic()
    result = run_sql_cli(
        SCRIPT,
        "--rest", rest,
        "--var", f"bootstrap={kafka_bootstrap}",
        "--var", f"events_topic={topic}",
        "--var", f"outs_topic={outs}",
        "--var", f"txn_prefix=bare-{outs}",
        "--var", f"api_base={fake_llm.base_url}",
        "--journal-dir", str(tmp_path / "journal"),
        "--restart-attempts", "0",
        "--checkpoint-interval", "1000",
        cwd=cwd,
        timeout_s=480,
        FAKE_LLM_API_KEY="",  # not here: only the workers have the key
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    assert re.search(r"shipping streaming_agents and \d+ packages \(\d+ MB", result.stderr)
    outputs = [json.loads(m.value()) for m in consume_committed(
        kafka_bootstrap, outs, expected=4, timeout_s=60, linger_s=2)]  # fmt: skip
    dead = [json.loads(m.value()) for m in consume_committed(
        kafka_bootstrap, dlq, expected=4, timeout_s=30, linger_s=1)]  # fmt: skip
    assert sorted(o["source"]["offset"] for o in outputs) == [1, 3, 5, 7]
    assert all(o["status"] == "OK" and o["reply"].startswith("echo") for o in outputs), outputs
    got = sorted((d["source"]["offset"], d["reason"]) for d in dead)
    assert got == [(2 * i, c.expect) for i, c in enumerate(cases[::2])], got
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{sql_cluster.rest_url}/jobs/overview", timeout=10) as response:
        jobs = json.loads(response.read())["jobs"]
    assert [j["state"] for j in jobs] == ["FINISHED"], jobs  # ran there, once
    with opener.open(f"{sql_cluster.rest_url}/jobs/{jobs[0]['jid']}/exceptions", timeout=10) as r:
        history = json.loads(r.read())
    assert not history.get("exceptionHistory", {}).get("entries"), history  # no failure, ever
    print(f"sql --rest on bare workers: {took:.1f} s")


def test_an_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Path) -> None:
    script = tmp_path / "s.sql"
    script.write_text("CREATE TABLE t (x INT) WITH ('connector' = 'datagen');\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_sql_cli(script, "--rest", f"127.0.0.1:{free_port()}", cwd=cwd, timeout_s=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Flink REST API at http://127.0.0.1:" in lines[0], lines
