"""``streaming-agents sql`` fails loudly: a script whose records mostly failed exits 1 in one line.

The CLI runs as a new process from a folder outside the repo (as a user runs
it).  Two scripts: a Kafka JSON table whose records are mostly not rows of the
table (dead letters), and an agent whose LLM is unreachable (every row
FAILED).  The counting (:mod:`streaming_agents.sql.tally`) and the
``--check`` of ``--journal`` are checked without Flink.  That a mostly good
script still exits 0 with exact counts is in ``tests/test_sql_hostile.py``.
"""

from __future__ import annotations

import pickle
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.cli.failures import MostlyDeadLettered, check_parts
from streaming_agents.cli.main import main
from streaming_agents.sql.tally import AI, INPUT, Tally, read_tallies
from streaming_agents.testing.kafka import consume_committed, create_topics, produce
from tests.test_sql_cli import cli_env, run_sql_cli

HOSTILE_SCRIPT = """
CREATE TABLE events (k STRING NOT NULL, n BIGINT) WITH (
  'connector' = 'kafka', 'topic' = '${topic}', 'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = 'loud-sql', 'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset', 'format' = 'json');
CREATE TABLE sink (k STRING, n BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO sink SELECT k, n FROM events;
"""

DEAD_LLM_SCRIPT = """
CREATE MODEL gone WITH ('provider' = 'openai', 'model' = 'x', 'api_base' = '${api_base}',
  'api_key_env' = 'DEAD_KEY', 'timeout' = '2', 'num_retries' = '0');
CREATE AGENT helper USING MODEL gone USING PROMPT 'Help.';
CREATE TEMPORARY VIEW asks AS SELECT * FROM (VALUES ('a'), ('b'), ('c'), ('d')) AS t(k);
CREATE TABLE sink (k STRING, status STRING, error STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink
SELECT t.k, r.status, r.error
FROM asks AS t, LATERAL TABLE(AI_RUN_AGENT('helper', t.k, t.k)) AS r(status, response, turn, error);
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# One attempt (a failing job is not restarted); a checkpoint each second.
ONE_ATTEMPT = ("--restart-attempts", "0", "--checkpoint-interval", "1000")


def _run_failing(
    tmp_path: Path, name: str, text: str, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run script ``text`` (as ``name``) with ``args`` + ONE_ATTEMPT as a new process.

    It runs from a folder outside the repo, must exit 1 and must say
    ``streaming-agents: failed:`` on exactly one line; returns the finished
    process and that line."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    script = tmp_path / name
    script.write_text(text)
    result = run_sql_cli(script, *args, *ONE_ATTEMPT, cwd=cwd, timeout_s=240, **env)
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-3000:])
    prefix = "streaming-agents: failed:"
    failed = [ln for ln in result.stderr.splitlines() if ln.startswith(prefix)]
    assert len(failed) == 1, result.stderr[-3000:]
    return result, failed[0]


def test_tally_counts_per_statement_and_the_verdict_is_one_line(tmp_path: Path) -> None:
    # the functions carry their tally to the workers pickled: no open file travels
    decoder = pickle.loads(pickle.dumps(Tally(str(tmp_path), 4, 12, INPUT)))
    for _ in range(3):
        decoder.ok()
    for n in range(5):
        decoder.failed(f"type mismatch: column 'n': got {n}\nsecond line")
    agent = pickle.loads(pickle.dumps(Tally(str(tmp_path), 4, 12, AI)))
    agent.ok()
    agent.ok()
    agent.failed("llm error: connection refused")
    other = Tally(str(tmp_path), 6, 20, AI)
    other.ok()
    counted = read_tallies(tmp_path)
    assert [(c.number, c.line, c.inputs, c.ai_rows, c.total) for c in counted] == [
        (4, 12, 8, 3, 8),  # a statement reading a Kafka JSON table: its records are its events
        (6, 20, 0, 1, 1),  # no JSON table: its AI rows are
    ]
    assert sum(counted[0].dead.values()) == 5 and "second line" not in str(counted[0].dead)
    assert len(counted[0].reasons()) == 6  # 5 dead letters + 1 FAILED row of 8 records
    parts = [(f"statement {c.number}", c.total, c.reasons()) for c in counted]
    with pytest.raises(MostlyDeadLettered) as caught:
        check_parts(parts, 0.5, failed="dead-lettered or FAILED")
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith("statement 4: 6 of 8 events dead-lettered or FAILED (75%"), line
    check_parts(parts, 0.75)  # exactly at the ratio: allowed
    check_parts(parts, 1.0)  # 1 turns the check off


def test_check_validates_the_journal_uri_and_the_ratio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "s.sql"
    script.write_text("CREATE TABLE t (k STRING) WITH ('connector' = 'blackhole');\n")
    bad = {
        "ftp://somewhere": "expected sqlite://..., kafka://... or none",
        "kafka://localhost:9092": "expected kafka://bootstrap/topic",
        "sqlite:///j?retention=soon": "retention",
    }
    for uri, message in bad.items():
        assert main(["sql", "--check", str(script), "--journal", uri]) == 2, uri
        assert message in capsys.readouterr().err, uri
    both = ["--journal", "none", "--journal-dir", str(tmp_path)]
    assert main(["sql", "--check", str(script), *both]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["sql", "--check", str(script), "--max-dead-letter-ratio", "2"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    good = "kafka://localhost:9092/journal?retention=604800"
    assert main(["sql", "--check", str(script), "--journal", good]) == 0
    out = capsys.readouterr().out
    assert f"journal: {good}" in out and "s.sql: OK" in out
    assert main(["sql", "--check", str(script), "--journal-dir", str(tmp_path / "j")]) == 0
    assert f"journal: sqlite://{(tmp_path / 'j').resolve()}" in capsys.readouterr().out


def test_a_script_whose_kafka_records_mostly_dead_letter_exits_1_in_one_line(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    topic = topic_factory("loud-sql-in")
    create_topics(kafka_bootstrap, [f"{topic}.dead-letters"])
    good = [b'{"k": "a", "n": 1}', b'{"k": "b", "n": 2}']
    bad = [b'{"k": "x", "n": "abc"}', b'{"n": 3}', b"not json", b'{"k": "y", "n": 1.5}']
    produce(kafka_bootstrap, topic, [(None, v) for v in [*good, *bad]])
    variables = ("--var", f"topic={topic}", "--var", f"bootstrap={kafka_bootstrap}")
    result, failed = _run_failing(tmp_path, "hostile.sql", HOSTILE_SCRIPT, *variables)
    assert re.search(
        r"sql hostile\.sql statement 3 \(line 7\): 4 of 6 events dead-lettered or FAILED "
        r"\(67%, above --max-dead-letter-ratio 0\.5\); most common: \d x dead letter: ",
        failed,
    ), failed
    assert "[3] counted: 6 records read (4 dead letters)" in result.stdout, result.stdout


def test_a_script_whose_llm_is_unreachable_exits_1_without_a_log_flood(tmp_path: Path) -> None:
    api_base = f"http://127.0.0.1:{_closed_port()}/v1"
    variables = ("--var", f"api_base={api_base}")
    result, failed = _run_failing(
        tmp_path, "dead_llm.sql", DEAD_LLM_SCRIPT, *variables, DEAD_KEY="sk-dead"
    )
    assert re.search(
        r"sql dead_llm\.sql statement 5 \(line 7\): 4 of 4 events dead-lettered or FAILED "
        r"\(100%.*most common: 4 x AI row failed: ",
        failed,
    ), failed
    assert "[5] counted: 4 AI rows (4 FAILED)" in result.stdout, result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 3, result.stderr[-3000:]  # the verdict, not a line per row
    assert "LiteLLM" not in result.stdout + result.stderr


def test_an_unbounded_script_stopped_with_ctrl_c_says_it_was_mostly_dead_letters(
    kafka_bootstrap: str, topic_factory: Any, tmp_path: Path
) -> None:
    """An unbounded script never ends by itself: Ctrl-C gives the verdict line, exit 130."""
    topic = topic_factory("loud-sql-u")
    dlq = f"{topic}.dead-letters"
    create_topics(kafka_bootstrap, [dlq])
    produce(kafka_bootstrap, topic, [(None, v) for v in (b'{"k": "a"}', b"[", b"{", b"nul")])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    script = tmp_path / "endless.sql"
    script.write_text(HOSTILE_SCRIPT.replace("'scan.bounded.mode' = 'latest-offset',", ""))
    command = [str(Path(sys.executable).with_name("streaming-agents")), "sql", str(script)]
    command += ["--var", f"topic={topic}", "--var", f"bootstrap={kafka_bootstrap}"]
    command += ONE_ATTEMPT
    run = subprocess.Popen(
        command, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # the job commits its dead letters at a checkpoint: wait for them, then Ctrl-C
        assert len(consume_committed(kafka_bootstrap, dlq, expected=3, timeout_s=180)) == 3
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err[-3000:]
    verdict = [ln for ln in err.splitlines() if "events dead-lettered or FAILED" in ln]
    assert len(verdict) == 1, err[-3000:]
    assert re.search(r"statement 3 \(line 7\): 3 of 4 events .*\(75%", verdict[0]), verdict
    assert "malformed event" in verdict[0], verdict
    assert "[3] counted: 4 records read (3 dead letters)" in out, out
    assert "interrupted" in err
