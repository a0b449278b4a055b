"""One journal setting everywhere: the CLI's --journal, production readers, the replay overlay.

No Flink here: the option parsing of ``run``/``submit``, the read-only readers a
replay and time travel open on production's journal (SQLite file; Kafka topic on
the session broker), and :class:`ReplayJournal` answering from production while
writing only the run's own store.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

import pytest

from streaming_agents.agent import LLMResult
from streaming_agents.cli.job_options import add_job_arguments, journal_setting
from streaming_agents.errors import ConfigError
from streaming_agents.journal.factory import (
    JournalSpec,
    as_journal_uri,
    open_journal,
    open_reader,
    request_log,
    resolve_journal,
)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_job_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_journal_option_and_its_deprecated_alias(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()
    assert journal_setting(_args()) is None  # the workers' settings decide
    uri = "kafka://b1:9092,b2:9092/agents-journal?lookback=600"
    assert journal_setting(_args("--journal", uri)) == uri
    assert journal_setting(_args("--journal", "none")) == "none"
    assert journal_setting(_args("--journal-dir", str(tmp_path))) == f"sqlite://{tmp_path}"
    assert journal_setting(_args("--journal", str(tmp_path / "j.sqlite"))) == (
        f"sqlite://{tmp_path / 'j.sqlite'}"
    )
    with pytest.raises(ConfigError, match="not both"):
        journal_setting(_args("--journal", uri, "--journal-dir", str(tmp_path)))
    for bad in ("kafka://b1:9092", "redis://x/y", "kafka://b:1/t?partitions=zero"):
        with pytest.raises(ConfigError):
            journal_setting(_args("--journal", bad))


def test_submit_hands_the_journal_uri_to_the_entry_point(tmp_path: Path) -> None:
    from streaming_agents.cli.cluster_cmd import _entry_args
    from streaming_agents.cli.jobs_cmd import entry_parser
    from streaming_agents.cli.main import build_parser

    uri = "kafka://b1:9092/agents-journal"
    args = build_parser().parse_args(["submit", "supply_chain", "--journal", uri])
    entry = _entry_args(args, tmp_path)
    assert entry[entry.index("--journal") + 1] == uri
    parsed = entry_parser().parse_args(entry)
    assert journal_setting(parsed) == uri


def _production_sqlite(path: Path) -> None:
    prod = open_journal(f"sqlite://{path}", agent="a", version="1", job="prod-job")
    asyncio.run(prod.append("k", "d1", LLMResult(content="paid in production")))
    log = request_log(prod)
    assert log is not None
    log.record_request(kind="llm", agent="a", version="1", key="k", turn=1, digest="d1",
                       body='{"messages": []}')  # fmt: skip
    prod.close()


def test_sqlite_reader_is_read_only_and_scoped(tmp_path: Path) -> None:
    path = tmp_path / "prod.sqlite"
    _production_sqlite(path)
    size = path.stat().st_size
    reader = open_reader(f"sqlite://{path}?scope=prod-job", agent="a")
    assert asyncio.run(reader.lookup("k", "d1")) == LLMResult(content="paid in production")
    other = open_reader(f"sqlite://{path}?scope=other-job", agent="a")
    assert asyncio.run(other.lookup("k", "d1")) is None
    unscoped = open_reader(str(path), agent="a")  # a plain path: every scope
    assert asyncio.run(unscoped.lookup("k", "d1")) is not None
    with pytest.raises(ConfigError, match="read-only"):
        asyncio.run(reader.append("k", "d2", LLMResult(content="x")))
    for journal in (reader, other, unscoped):
        journal.close()
    assert path.stat().st_size == size
    with pytest.raises(ConfigError, match="does not exist"):
        asyncio.run(open_reader(f"sqlite://{tmp_path}/missing.sqlite", agent="a").lookup("k", "d"))


def test_replay_journal_answers_from_production_and_writes_its_own(tmp_path: Path) -> None:
    prod_path, own_path = tmp_path / "prod.sqlite", tmp_path / "run" / "journal.sqlite"
    _production_sqlite(prod_path)
    spec = JournalSpec(uri=f"sqlite://{own_path}", job="run-1", read_from=str(prod_path))
    journal = resolve_journal(spec, agent="a", version="2")
    assert asyncio.run(journal.lookup("k", "d1")) == LLMResult(content="paid in production")
    asyncio.run(journal.append("k", "d2", LLMResult(content="paid by the replay")))
    log = request_log(journal)
    assert log is not None
    log.record_request(kind="llm", agent="a", version="2", key="k", turn=1, digest="d2",
                       body='{"messages": [1]}')  # fmt: skip
    assert asyncio.run(journal.lookup("k", "d2")) == LLMResult(content="paid by the replay")
    journal.close()
    prod = open_reader(str(prod_path), agent="a")
    assert asyncio.run(prod.lookup("k", "d2")) is None, "production not written"
    prod_log = request_log(prod)
    assert prod_log is not None and [r.digest for r in prod_log.recorded_requests()] == ["d1"]
    prod.close()
    own = open_journal(f"sqlite://{own_path}", agent="a", version="2", job="run-1")
    own_log = request_log(own)
    assert own_log is not None and [r.digest for r in own_log.recorded_requests()] == ["d2"]
    own.close()


def test_request_log_rows_are_scoped_to_their_job(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    for job, version, digest in (("prod-job", "1", "p1"), ("prod-job", "2", "p2"),
                                 ("other-job", "1", "o1")):  # fmt: skip
        journal = open_journal(f"sqlite://{path}", agent="a", version=version, job=job)
        log = request_log(journal)
        assert log is not None
        log.record_request(kind="llm", agent="a", version=version, key="k", turn=1,
                           digest=digest, body="{}")  # fmt: skip
        journal.close()

    def digests(uri: str, **kw: str) -> list[str]:
        reader = open_reader(uri, agent="a", **kw)
        log = request_log(reader)
        assert log is not None
        try:
            return [row.digest for row in log.recorded_requests(agent="a")]
        finally:
            reader.close()

    assert digests(f"sqlite://{path}?scope=prod-job") == ["p1", "p2"]  # every version
    assert digests(f"sqlite://{path}?scope=prod-job", version="2") == ["p2"]
    assert digests(f"sqlite://{path}?scope=other-job") == ["o1"]
    assert digests(str(path)) == ["p1", "p2", "o1"]


def test_kafka_reader_creates_nothing_and_reads_old_entries(kafka_bootstrap: str) -> None:
    from streaming_agents.replay.topics import topic_end_offsets

    topic = f"jr-{uuid.uuid4().hex[:10]}"
    missing = open_reader(f"kafka://{kafka_bootstrap}/{topic}-absent", agent="a")
    with pytest.raises(ConfigError, match="no journal topic"):
        asyncio.run(missing.lookup("k", "d"))
    missing.close()
    uri = f"kafka://{kafka_bootstrap}/{topic}?partitions=4&lookback=1"
    writer = open_journal(uri, agent="a", version="1", job="prod-job")
    asyncio.run(writer.append("k", "d1", LLMResult(content="from kafka")))
    writer.close()
    before = topic_end_offsets(kafka_bootstrap, topic)
    # since=0 (the reader's default): older than any lookback still answers
    reader = open_reader(f"kafka://{kafka_bootstrap}/{topic}?partitions=4&scope=prod-job",
                         agent="a")  # fmt: skip
    assert asyncio.run(reader.lookup("k", "d1")) == LLMResult(content="from kafka")
    with pytest.raises(ConfigError, match="read-only"):
        asyncio.run(reader.append("k", "d2", LLMResult(content="x")))
    reader.close()
    assert topic_end_offsets(kafka_bootstrap, topic) == before
    assert as_journal_uri(uri) == uri


def test_time_travel_sees_a_keys_events_in_production_order() -> None:
    """Offset order within a partition even when record times go backwards; the point bounds."""
    import json

    from streaming_agents.replay.history import _select
    from streaming_agents.replay.topics import TopicRecord
    from streaming_agents.runtime.events import Limits

    def rec(partition: int, offset: int, ts: int, key: str) -> tuple[str, TopicRecord]:
        value = json.dumps({"k": key, "at": [partition, offset]}).encode()
        return "in", TopicRecord(partition, offset, ts, value)

    records = [rec(0, 2, 50, "a"), rec(0, 0, 100, "a"), rec(0, 1, 10, "a"), rec(1, 0, 20, "a")]
    records += [rec(1, 1, 5, "b"), ("in", TopicRecord(0, 3, 60, b"not json"))]
    found = _select(records, "a", "k", None, None, Limits())
    assert [(e.partition, e.offset) for e in found] == [(1, 0), (0, 0), (0, 1), (0, 2)]
    upto = _select(records, "a", "k", 1, None, Limits())
    assert [(e.partition, e.offset) for e in upto] == [(1, 0), (0, 0), (0, 1)]
    before = _select(records, "a", "k", None, 20, Limits())
    assert [(e.partition, e.offset) for e in before] == [(0, 1), (1, 0)]  # record time <= 20
