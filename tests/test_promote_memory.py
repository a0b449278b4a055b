"""Promotion and rollback across a memory-schema change (no Flink, under a second).

A promotion to a version with a newer memory schema upgrades production's
documents with the new class's ``migrate``; the way back meets documents of
the newer schema.  ``promote``/``rollback`` check, before production is
stopped, that the version they start can read what the running one wrote
(:func:`streaming_agents.promote.memory_switch_problem`), for a job that lists
its versions' memory classes as ``VERSION_MEMORY``.  The tests tie the check to
what ``Memory.load`` really does with such documents, and check the refusal
names the way back (``rollback --from`` the promotion's savepoint).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest

from streaming_agents.cli.promote_cmd import _memory_check
from streaming_agents.errors import ConfigError
from streaming_agents.memory import Memory
from streaming_agents.promote import HISTORY_FILE, check_memory_switch, memory_switch_problem
from streaming_agents.registry import load_job


class NotesV1(Memory):
    notes: list[str] = []


class NotesV2(Memory):
    """Schema 2: notes became (text, claim id) entries."""

    SCHEMA_VERSION: ClassVar[int] = 2
    entries: list[dict[str, str]] = []

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        if from_version != 1:
            return super().migrate(data, from_version)
        return {**data, "entries": [{"text": n, "claim": ""} for n in data.pop("notes", [])]}


class NotesV1Reads2(NotesV1):
    """Schema 1 that declares it reads schema 2 (a downgrade)."""

    DOWNGRADES_FROM: ClassVar[tuple[int, ...]] = (2,)

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        if from_version != 2:
            return super().migrate(data, from_version)
        return {**data, "notes": [e["text"] for e in data.pop("entries", [])]}


class NotesV2NoMigrate(Memory):
    SCHEMA_VERSION: ClassVar[int] = 2


def _written_by_v2() -> str:
    return NotesV2.load(
        NotesV1(notes=["water damage"], turn_count=1).model_dump_json()
    ).model_dump_json()


def test_the_check_says_what_memory_load_does() -> None:
    v2_doc = _written_by_v2()
    assert json.loads(v2_doc)["schema_version"] == 2
    # promote 1 -> 2: v2's migrate upgrades schema-1 documents
    assert memory_switch_problem(NotesV1, NotesV2) is None
    # rollback 2 -> 1: version 1 cannot read schema 2, and the check says so
    with pytest.raises(ConfigError, match="cannot read memory schema_version 2"):
        NotesV1.load(v2_doc)
    problem = memory_switch_problem(NotesV2, NotesV1)
    assert problem is not None and "schema 2" in problem and "DOWNGRADES_FROM" in problem
    # ... unless version 1's class declares the downgrade (and its migrate does it)
    assert memory_switch_problem(NotesV2, NotesV1Reads2) is None
    back = NotesV1Reads2.load(v2_doc)
    assert (back.notes, back.turn_count, back.schema_version) == (["water damage"], 1, 1)
    # a newer schema without its own migrate cannot upgrade anything
    with pytest.raises(ConfigError):
        NotesV2NoMigrate.load(NotesV1().model_dump_json())
    assert "does not override migrate" in (memory_switch_problem(NotesV1, NotesV2NoMigrate) or "")
    assert memory_switch_problem(NotesV1, NotesV1) is None


def test_refusal_names_the_promotion_s_savepoint(tmp_path: Path) -> None:
    memories = {"1": NotesV1, "2": NotesV2}
    check_memory_switch(memories, "1", "2", job="notes", savepoint_dir=tmp_path)  # promote: fine
    check_memory_switch(memories, "2", "3", job="notes", savepoint_dir=tmp_path)  # not listed
    with pytest.raises(ConfigError) as plain:
        check_memory_switch(memories, "2", "1", job="notes", savepoint_dir=tmp_path)
    assert "rollback notes --to 1 --from SAVEPOINT" in str(plain.value)
    record = {"action": "promote", "job": "notes", "from_job_id": "a" * 32, "from_version": "1",
              "savepoint": "file:/sp/savepoint-4f2e", "to_version": "2", "to_job_id": "b" * 32,
              "at": 0.0, "seconds": 40.0}  # fmt: skip
    (tmp_path / HISTORY_FILE).write_text(json.dumps(record) + "\n")
    with pytest.raises(ConfigError) as named:
        check_memory_switch(memories, "2", "1", job="notes", savepoint_dir=tmp_path)
    text = str(named.value)
    assert "rollback notes --to 1 --from file:/sp/savepoint-4f2e" in text, text
    assert "Production was not stopped" in text and "answered again" in text
    assert "DOWNGRADES_FROM = (2,)" in text


def _job(folder: Path, memories: str) -> Path:
    """A registered job whose package lists its versions' memory classes."""
    folder.mkdir()
    (folder / "__init__.py").write_text(textwrap.dedent(f'''\
        """A job with two memory schemas (test)."""
        from tests_promote_memory_classes import NotesV1, NotesV2
        VERSION_MEMORY = {memories}
        '''))  # fmt: skip
    (folder / "spec.py").write_text(textwrap.dedent('''\
        """Spec of the test job."""
        from streaming_agents.registry import AgentDecl, JobSpec
        JOB = JobSpec(name="notes-job", description="test", topics={"in": "in"},
                      agents=(AgentDecl("notes", "1", ("in",), ()),), build=lambda env, ctx: None)
        '''))  # fmt: skip
    return folder


def test_the_cli_checks_the_job_s_declared_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    classes = types.ModuleType("tests_promote_memory_classes")
    classes.NotesV1, classes.NotesV2 = NotesV1, NotesV2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_promote_memory_classes", classes)
    entry = load_job(_job(tmp_path / "notes_job", '{"1": NotesV1, "2": NotesV2}'))
    check = _memory_check(entry, "notes-job", tmp_path)
    assert check is not None
    check("", "2")  # "" (the job's default) is version 1: an upgrade
    with pytest.raises(ConfigError, match="cannot switch from version 2 to 1 in place"):
        check("2", "")
    # claims_triage declares its versions: one schema, both ways are fine
    triage = _memory_check(load_job("claims_triage"), "claims-triage", tmp_path)
    assert triage is not None
    triage("", "2")
    triage("2", "1")
