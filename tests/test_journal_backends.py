"""Journal backends: the URI factory, scoping, file permissions, pruning, and the
Kafka journal on the real broker (survives a killed writer; bounded reads)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streaming_agents.agent import LLMResult
from streaming_agents.errors import ConfigError
from streaming_agents.journal.base import JournalScope, ResultCache, key_partition
from streaming_agents.journal.factory import JournalSpec, ledger_uri, open_journal, resolve_journal
from streaming_agents.journal.kafka import KafkaJournal
from streaming_agents.journal.ledger_sqlite import SqliteLedger
from streaming_agents.journal.null import NullJournal
from streaming_agents.journal.sqlite import SqliteJournal

WORKER = str(Path(__file__).with_name("journal_worker.py"))


def _result(text: str) -> LLMResult:
    return LLMResult(content=text, model="m", prompt_tokens=3, completion_tokens=2)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_factory_picks_the_backend_from_the_uri(tmp_path: Path) -> None:
    assert isinstance(open_journal("none", agent="a"), NullJournal)
    file_journal = open_journal(f"sqlite://{tmp_path}/j.sqlite", agent="a", job="j")
    assert isinstance(file_journal, SqliteJournal)
    assert file_journal.path == f"{tmp_path}/j.sqlite"
    folder_journal = open_journal(f"sqlite://{tmp_path}/dir", agent="triage", version="2")
    assert isinstance(folder_journal, SqliteJournal)
    assert folder_journal.path == f"{tmp_path}/dir/triage.sqlite"
    assert folder_journal.scope == JournalScope(job="triage", agent="triage", version="2")
    kafka = open_journal("kafka://h1:9092,h2:9092/jr?partitions=8&lookback=60", agent="a")
    assert isinstance(kafka, KafkaJournal)
    assert (kafka.bootstrap, kafka.topic, kafka.partitions, kafka.lookback_s) == (
        "h1:9092,h2:9092", "jr", 8, 60.0,
    )  # fmt: skip
    assert open_journal(f"sqlite://{tmp_path}/x.sqlite?scope=*", agent="a").scope is None  # type: ignore[attr-defined]
    for bad in (
        "redis://x",
        "kafka://host",
        "sqlite:///x?retention=-1",
        "kafka://h/t?partitions=x",
    ):
        with pytest.raises(ConfigError):
            open_journal(bad, agent="a")


def test_the_worker_setting_decides_when_the_job_names_no_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMING_AGENTS_JOURNAL", f"sqlite://{tmp_path}/worker")
    spec = JournalSpec(uri=None, job="job-1")
    journal = resolve_journal(spec, agent="a", version="1")
    assert isinstance(journal, SqliteJournal)
    assert journal.path == f"{tmp_path}/worker/a.sqlite"
    assert journal.scope == JournalScope("job-1", "a", "1")
    assert ledger_uri(journal, None) == f"sqlite://{tmp_path}/worker"
    monkeypatch.delenv("STREAMING_AGENTS_JOURNAL")
    monkeypatch.delenv("STREAMING_AGENTS_JOURNAL_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    default = resolve_journal(None, agent="a", version="1")
    assert isinstance(default, SqliteJournal)
    assert default.path == f"{tmp_path}/state/streaming_agents/journal/a.sqlite"
    assert ledger_uri("kafka://b:1/jt", None) == "kafka://b:1/jt.budget"


def test_sqlite_entries_are_scoped_and_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "j.sqlite"
    job1 = SqliteJournal(path, scope=JournalScope("job-1", "a", "1"))
    job2 = SqliteJournal(path, scope=JournalScope("job-2", "a", "1"))
    _run(job1.append("k", "d1", _result("one")))
    assert _run(job1.lookup("k", "d1")) == _result("one")
    assert _run(job2.lookup("k", "d1")) is None, "another job does not share answers"
    assert isinstance(job1, ResultCache)
    replay = SqliteJournal(path)  # unscoped: a replay reads every scope
    assert replay.get("d1") == _result("one")
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    for name in (path, Path(f"{path}-wal")):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    for journal in (job1, job2, replay):
        journal.close()


def test_sqlite_prunes_entries_past_the_retention(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path, retention_s=3600)
    journal.put("old", _result("old"))
    journal.put("new", _result("new"))
    journal.record_request(kind="llm", agent="a", version="1", key="k", turn=1,
                           digest="old", body="{}")  # fmt: skip
    journal.close()
    with sqlite3.connect(path) as conn:  # age one entry and the request row by two hours
        conn.execute("UPDATE results SET ts = ts - 7200 WHERE digest = 'old'")
        conn.execute("UPDATE requests SET ts = ts - 7200")
    reopened = SqliteJournal(path, retention_s=3600)
    assert reopened.get("old") is None
    assert reopened.get("new") == _result("new")
    assert reopened.recorded_requests() == []
    reopened.close()


def test_sqlite_adopts_a_journal_file_of_the_older_layout(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE journal (digest TEXT PRIMARY KEY, result TEXT NOT NULL)")
        conn.execute("INSERT INTO journal VALUES ('d', ?)", (_result("kept").model_dump_json(),))
    journal = SqliteJournal(path)
    assert journal.get("d") == _result("kept")
    journal.close()


_OLD_REQUESTS = (
    "CREATE TABLE requests (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
    " agent TEXT NOT NULL, version TEXT NOT NULL, key TEXT NOT NULL, turn INTEGER NOT NULL,"
    " digest TEXT NOT NULL, body TEXT NOT NULL, event TEXT, ts REAL NOT NULL,"
    " UNIQUE (kind, agent, key, turn, digest))"
)


def _open_at_once(paths: list[str], barrier: Any, errors: Any) -> None:
    """One call worker: for each file, wait for the others, then open it and read."""
    for path in paths:
        barrier.wait()
        try:
            journal = SqliteJournal(path)
            journal.get("d")
            journal.close()
            assert SqliteLedger(path + ".ledger").spent("agent", 0) == (0, 0.0)
        except (sqlite3.Error, ConfigError, AssertionError) as exc:  # the test fails on it
            errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("layout", ["fresh", "pre-scope requests table"])
def test_sqlite_opened_by_many_workers_at_once(tmp_path: Path, layout: str) -> None:
    """Every call worker of a host opens the same journal and ledger files at the
    same moment (a job with llm_processes starting): none of them may fail
    switching the file to WAL or creating or upgrading its tables."""
    paths = [tmp_path / f"shared-{n}.sqlite" for n in range(20)]
    for path in paths if layout != "fresh" else []:
        with sqlite3.connect(path) as conn:
            conn.execute(_OLD_REQUESTS)
    ctx = multiprocessing.get_context("spawn")
    workers = 6
    barrier, errors = ctx.Barrier(workers), ctx.Queue()
    args = ([str(path) for path in paths], barrier, errors)
    procs = [ctx.Process(target=_open_at_once, args=args) for _ in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    failures = [errors.get(timeout=1) for _ in range(errors.qsize())]
    assert failures == []
    assert [proc.exitcode for proc in procs] == [0] * workers
    for path in paths:
        with sqlite3.connect(path) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
        assert "scope" in columns


def test_kafka_journal_entries_survive_a_killed_writer(kafka_bootstrap: str) -> None:
    topic = f"journal-kill-{time.time_ns()}"
    count = 20
    writer = subprocess.Popen(
        [sys.executable, WORKER, "append", kafka_bootstrap, topic, str(count)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None
        lines = [writer.stdout.readline().strip() for _ in range(count + 1)]
        assert lines[-1] == "done", lines
    finally:
        writer.kill()  # SIGKILL: nothing flushed on the way out
        writer.wait()
    reader = open_journal(f"kafka://{kafka_bootstrap}/{topic}?partitions=4", agent="a", job="kill")
    found = [_run(reader.lookup(f"k{i}", f"d{i}")) for i in range(count)]
    assert [r.content if r else None for r in found] == [f"answer {i}" for i in range(count)]
    other_job = open_journal(f"kafka://{kafka_bootstrap}/{topic}?partitions=4", agent="a", job="x")
    assert _run(other_job.lookup("k0", "d0")) is None, "scoped: another job's entries are skipped"
    reader.close()
    other_job.close()


def test_kafka_journal_reads_only_its_keys_partitions_and_the_recent_tail(
    kafka_bootstrap: str,
) -> None:
    topic = f"journal-bounded-{time.time_ns()}"
    uri = f"kafka://{kafka_bootstrap}/{topic}?partitions=8&lookback=2"

    async def write(prefix: str, keys: int) -> None:
        journal = open_journal(uri, agent="a", job="j")
        for i in range(keys):
            await journal.append(f"{prefix}{i}", f"{prefix}-d{i}", _result(f"{prefix}{i}"))
        journal.close()

    _run(write("old", 80))
    time.sleep(3.5)  # the old entries fall out of a 2 s lookback (broker time)
    _run(write("new", 80))
    key = "new7"
    partition = key_partition(key, 8)
    same_partition_new = sum(1 for i in range(80) if key_partition(f"new{i}", 8) == partition)
    same_partition_old = sum(1 for i in range(80) if key_partition(f"old{i}", 8) == partition)
    assert same_partition_old > 0

    reader = open_journal(uri, agent="a", job="j")
    assert isinstance(reader, KafkaJournal)
    assert _run(reader.lookup(key, "new-d7")) == _result("new7")
    assert reader.stats.partitions_loaded == 1, "one partition read for one key"
    assert reader.stats.records_read == same_partition_new, (
        "only the tail since anchor - lookback, not the partition's history",
        reader.stats.records_read, same_partition_new, same_partition_old,
    )  # fmt: skip
    # a second key of the same partition is answered from memory, no new read
    other = next(f"new{i}" for i in range(80) if key_partition(f"new{i}", 8) == partition
                 and f"new{i}" != key)  # fmt: skip
    assert _run(reader.lookup(other, f"{other.replace('new', 'new-d')}")) is not None
    assert reader.stats.partitions_loaded == 1
    reader.close()


def test_kafka_request_log_pages_by_sequence(kafka_bootstrap: str) -> None:
    topic = f"journal-requests-{time.time_ns()}"
    log = open_journal(f"kafka://{kafka_bootstrap}/{topic}", agent="a")
    assert isinstance(log, KafkaJournal)
    assert log.last_request_seq() == 0
    for turn, key in enumerate(["k1", "k2", "k1", "k1"], start=1):
        log.record_request(kind="llm", agent="a", version="1", key=key, turn=turn,
                           digest=f"d{turn}", body="{}")  # fmt: skip
    log.record_request(kind="llm", agent="a", version="1", key="k1", turn=1, digest="d1", body="{}")
    since = log.last_request_seq()
    assert since == 5
    rows = log.recorded_requests(key="k1")
    assert [(r.turn, r.digest) for r in rows] == [(1, "d1"), (3, "d3"), (4, "d4")], "once per turn"
    assert [r.seq for r in log.recorded_requests(after_seq=2, upto_seq=4)] == [3, 4]
    log.record_request(kind="tool", agent="a", version="2", key="k9", turn=7, digest="t", body="x")
    assert [r.key for r in log.recorded_requests(after_seq=since)] == ["k9"]
    log.close()
