"""The ``--kafka-security`` option without a broker: what ``submit`` hands on, what fails.

``submit`` passes the setting to the ``flink run`` entry point as its
properties (references only): parsed there, it is the same setting, and the
password is nowhere on the command line.  ``agents --json`` lists each
agent's ACLs derived from the registry; a missing security file is a user
error (exit 2) before any Kafka client starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming_agents.cli.cluster_cmd import _entry_args
from streaming_agents.cli.job_options import security_of
from streaming_agents.cli.jobs_cmd import entry_parser
from streaming_agents.cli.main import build_parser, main
from streaming_agents.connectors.security import (
    KAFKA_SECURITY_ENV,
    KafkaSecurity,
    load_security,
    write_secret_file,
    write_security_file,
)


def _setting(tmp_path: Path, password: str) -> Path:
    ref = write_secret_file(tmp_path / "agent.secret", password)
    security = KafkaSecurity(
        "SASL_SSL", "SCRAM-SHA-512", "claims-triage", ref, ca_location=str(tmp_path / "ca.pem")
    )
    return write_security_file(tmp_path / "agent.properties", security)


@pytest.mark.parametrize("given", ["option", "environment"])
def test_submit_hands_the_setting_to_the_entry_point(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password = "pa'ss\"word-ENTRYCHECK"
    path = _setting(tmp_path, password)
    argv = ["submit", "claims_triage", "--model", "openai/x"]
    if given == "option":
        argv += ["--kafka-security", str(path)]
    else:
        monkeypatch.setenv(KAFKA_SECURITY_ENV, str(path))
    args = build_parser().parse_args(argv)
    entry = _entry_args(args, tmp_path / "job")
    assert "--kafka-security-properties" in entry
    assert not any(password in a for a in entry)
    monkeypatch.delenv(KAFKA_SECURITY_ENV, raising=False)  # the entry point sees only its args
    parsed = security_of(entry_parser().parse_args(entry))
    assert parsed == load_security(path)


def test_no_setting_means_plaintext(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(KAFKA_SECURITY_ENV, raising=False)
    args = build_parser().parse_args(["submit", "claims_triage", "--model", "openai/x"])
    assert "--kafka-security-properties" not in _entry_args(args, tmp_path)
    assert security_of(args) is None


def test_missing_security_file_is_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.properties"
    argv = ["compare", "--production", "a", "--candidate", "b", "--kafka-security", str(missing)]
    assert main(argv) == 2
    assert str(missing) in capsys.readouterr().err


def test_agents_lists_each_agents_acls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agents", "--json"]) == 0
    agents = {a["name"]: a for a in json.loads(capsys.readouterr().out)["agents"]}
    triage = agents["claims-triage"]["acls"]
    assert triage["read"] == ["claims"]
    assert triage["write"] == ["claims-decisions", "claims-dlq"]
    assert triage["groups"] == ["claims-triage"]
    assert main(["agents"]) == 0
    assert "claims-triage: read claims; write claims-decisions,claims-dlq" in (
        capsys.readouterr().out
    )
