"""The agent registry: discovery of jobs/*/spec.py, agents and their topic links, and the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from streaming_agents.cli.main import main
from streaming_agents.errors import ConfigError
from streaming_agents.registry import (
    AgentDecl,
    JobContext,
    JobSpec,
    agents,
    discover,
    jobs_dir,
    links,
    load_job,
)
from streaming_agents.testing.fake_llm_script import FakeLLMConfig

ROOT = Path(__file__).resolve().parents[1]
JOBS = {"catalog_normalisation", "claims_compliance", "claims_triage", "supply_chain"}


def _noop_build(env: object, ctx: JobContext) -> None:
    return None


def test_every_job_folder_is_discovered_with_its_agents() -> None:
    assert jobs_dir() == ROOT / "jobs"
    entries = discover()
    assert {e.name for e in entries} == JOBS
    infos = {a.name: a for a in agents(entries)}
    assert set(infos) == {
        "catalog-normaliser",
        "claims-compliance",
        "claims-triage",
        "supply-chain",
    }
    assert infos["supply-chain"].input_topics == (
        "shipment-positions",
        "warehouse-stock",
        "weather-alerts",
    )
    assert all(a.version == "1" for a in infos.values())
    for entry in entries:
        assert entry.spec.sample is not None and entry.spec.fake_rules is not None
        roles = {r.role for r in entry.spec.sample(12, 1)}
        assert roles and roles <= set(entry.spec.inputs), entry.name


def test_triage_feeds_compliance_through_a_topic() -> None:
    found = links(agents(discover()))
    assert [(ln.producer, ln.topic, ln.consumer) for ln in found] == [
        ("claims-triage", "claims-decisions", "claims-compliance")
    ]


def test_load_job_by_folder_name_spec_name_or_path() -> None:
    by_folder = load_job("supply_chain")
    assert load_job("supply-chain") == by_folder
    assert load_job(str(ROOT / "jobs" / "supply_chain")) == by_folder
    with pytest.raises(ConfigError, match=r"no job 'nope'.*supply_chain"):
        load_job("nope")


def test_job_folder_without_spec_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "half_done"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    with pytest.raises(ConfigError, match=r"no spec\.py"):
        load_job(str(folder))
    assert discover(tmp_path) == []  # skipped by discovery


def test_a_job_outside_the_repository(tmp_path: Path) -> None:
    folder = tmp_path / "tiny_registry_job"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "spec.py").write_text(
        textwrap.dedent(
            """
            from streaming_agents.registry import AgentDecl, JobSpec

            JOB = JobSpec(
                name="tiny",
                description="",
                topics={"in": "tiny-in", "out": "tiny-out"},
                agents=(AgentDecl("tiny-agent", "3", ("in",), ("out",)),),
                build=lambda env, ctx: None,
            )
            """
        )
    )
    entry = load_job(str(folder))
    assert entry.spec.inputs == ("in",)
    assert entry.spec.resolve_topics({"out": "x"}) == {"in": "tiny-in", "out": "x"}
    with pytest.raises(ConfigError, match="no topic role"):
        entry.spec.resolve_topics({"bogus": "x"})
    assert [a.name for a in agents(discover(tmp_path))] == ["tiny-agent"]


def test_job_spec_rejects_undeclared_roles() -> None:
    with pytest.raises(ConfigError, match="undeclared topic role"):
        JobSpec(
            name="bad",
            description="",
            topics={"in": "a"},
            agents=(AgentDecl("x", "1", ("in",), ("out",)),),
            build=_noop_build,
        )


def test_agents_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["AGENT", "VERSION", "JOB", "INPUT", "TOPICS", "OUTPUT", "TOPICS"]
    assert any(ln.split()[:3] == ["claims-compliance", "1", "claims_compliance"] for ln in lines)
    assert "  claims-triage -> claims-decisions -> claims-compliance" in lines
    assert main(["agents", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["agents"]) == 4
    assert payload["links"] == [
        {"from": "claims-triage", "topic": "claims-decisions", "to": "claims-compliance"}
    ]


def test_fake_llm_config_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fake-llm-config"]) == 0
    config = FakeLLMConfig.model_validate_json(capsys.readouterr().out)
    matches = [r.match for r in config.rules]
    # compliance prompts also carry the "Description:" lines triage's rules look for: its
    # rules must come first (they are anchored on the compliance prompt's first line)
    first_compliance = next(i for i, m in enumerate(matches) if "Compliance review" in m)
    first_triage = next(i for i, m in enumerate(matches) if m.startswith("(?im)^Amount"))
    assert first_compliance < first_triage
    assert main(["fake-llm-config", "nope"]) == 2
    assert "no job 'nope'" in capsys.readouterr().err


def test_deploy_fake_llm_config_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    """deploy/fake-llm-config.json (used by docker-compose) is the command's output."""
    assert main(["fake-llm-config"]) == 0
    current = json.loads(capsys.readouterr().out)
    stored = json.loads((ROOT / "deploy" / "fake-llm-config.json").read_text())
    assert stored == current, (
        "regenerate: streaming-agents fake-llm-config > deploy/fake-llm-config.json"
    )
