"""Pieces of memory starts and promotion that need no Flink, broker or cluster.

The savepoint files here are written byte by byte in the layout the Kafka
connector uses for its split state (``KafkaPartitionSplitSerializer`` inside
``SimpleVersionedSerialization``); ``tests/test_replay_memory_start.py`` and
``tests/test_promote.py`` read real checkpoints and savepoints.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from streaming_agents.errors import ConfigError
from streaming_agents.promote import FlinkRest, last_promotion, version_of
from streaming_agents.replay.errors import BadRange
from streaming_agents.replay.memory_start import MemoryStart, savepoint_dir, savepoint_offsets
from streaming_agents.replay.ranges import Position, ReplayRange, parse_position
from streaming_agents.versions import AGENT_VERSION_ENV, selected_version


def _split(topic: str, partition: int, offset: int, version: int = 0) -> bytes:
    name = topic.encode()
    body = struct.pack(">H", len(name)) + name + struct.pack(">iqq", partition, offset, -(2**63))
    return struct.pack(">ii", version, len(body)) + body


def _savepoint(folder: Path, *parts: bytes, extra_file: bytes | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "_metadata").write_bytes(b"\x00\x01junk" + b"".join(parts) + b"tail")
    if extra_file is not None:
        (folder / "4f1c-state").write_bytes(extra_file)
    return folder


def test_savepoint_offsets_are_the_readers_positions(tmp_path: Path) -> None:
    sp = _savepoint(
        tmp_path / "sp",
        _split("claims", 0, -2),  # the enumerator's initial "earliest"
        _split("claims", 0, 120),  # the reader's position
        _split("claims-other", 0, 999),  # another topic with the same prefix
        extra_file=b"xx" + _split("claims", 1, 7) + _split("claims", 1, 3),
    )
    assert savepoint_offsets(sp, "claims") == {0: 120, 1: 7}
    assert savepoint_offsets((sp / "_metadata").as_uri(), "claims-other") == {0: 999}
    with pytest.raises(ConfigError, match="no Kafka source position for topic 'missing'"):
        savepoint_offsets(sp, "missing")


def test_savepoint_dir_refuses_what_is_not_a_local_savepoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no _metadata"):
        savepoint_dir(tmp_path)
    with pytest.raises(ConfigError, match="only local paths"):
        savepoint_dir("s3://bucket/savepoint-1")


def test_memory_start_describes_itself_and_configures_the_restore(tmp_path: Path) -> None:
    sp = _savepoint(tmp_path / "sp", _split("t", 0, 5))
    start = MemoryStart.from_savepoint(sp, "triage").with_offsets({0: 5})
    config = start.flink_config("triage-1-2026 x")
    assert config["execution.state-recovery.path"] == sp.resolve().as_uri()
    assert config["execution.state-recovery.ignore-unclaimed-state"] == "true"
    assert config["table.exec.uid.format"] == "replay-triage-1-2026-x-<id>_<transformation>"
    assert start.agent_uid == "agent-triage" and "p0=5" in start.describe()
    assert start.to_dict()["offsets"] == {"0": 5}
    assert MemoryStart().flink_config("r") == {} and MemoryStart().describe().startswith("empty")


def test_savepoint_position_is_replaced_by_offsets() -> None:
    rng = ReplayRange(parse_position("savepoint"), Position.latest())
    rng.check()
    with pytest.raises(BadRange, match="needs a savepoint"):
        rng.resolve("127.0.0.1:9", "t")
    assert rng.from_offsets({0: 4}).start == Position.at_offset({0: 4})
    explicit = ReplayRange(Position.at_offset(2), Position.latest())
    assert explicit.from_offsets({0: 4}) is explicit
    with pytest.raises(BadRange, match="can only start"):
        ReplayRange(Position.earliest(), Position.savepoint()).check()


def test_versions_and_promotion_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(AGENT_VERSION_ENV, raising=False)
    assert selected_version({"1", "2"}, "1") == "1"
    monkeypatch.setenv(AGENT_VERSION_ENV, "2")
    assert selected_version({"1", "2"}, "1") == "2"
    monkeypatch.setenv(AGENT_VERSION_ENV, "9")
    with pytest.raises(ConfigError, match="versions are 1, 2"):
        selected_version({"1", "2"}, "1")
    assert version_of("claims-triage@2") == "2" and version_of("claims-triage") == ""
    with pytest.raises(ConfigError, match="http://HOST:PORT"):
        FlinkRest("ftp://x")
    assert last_promotion(tmp_path, "j") is None
    common = {"from_job_id": "a", "savepoint": "s", "to_job_id": "b", "at": 0, "seconds": 1}
    lines = [
        {"action": "promote", "job": "j", "from_version": "", "to_version": "2", **common},
        {"action": "promote", "job": "other", "from_version": "5", "to_version": "6", **common},
        {"action": "rollback", "job": "j", "from_version": "2", "to_version": "", **common},
    ]
    (tmp_path / "promotions.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    last = last_promotion(tmp_path, "j")
    assert last is not None and last.from_version == "" and last.to_version == "2"
