"""The CLI on the secured broker: ``run`` and ``replay`` as new processes over SASL_SSL.

``streaming-agents run claims_triage --bounded --sample 6 --kafka-security FILE``
runs as a principal of its own whose password holds ``'`` and ``"``, with the
ACLs the registry derives for the agent (``access_for_agent``) plus WRITE on
the input topic for ``--sample`` (the sample writer is the same client).  The
fake LLM answers over HTTP.  The decisions and dead letters are read back as
the admin; the agent's password must not appear in the command's output.
Then ``streaming-agents replay`` re-runs the agent over the claims topic
over SASL_SSL (as the admin: the replay job's group and transactional ids are
per run), answered from the run's journal, and compares with the decisions.

The other shipped jobs run the same way (one parametrized test), the setting
given by ``$STREAMING_AGENTS_KAFKA_SECURITY`` instead of the option, under
exactly the ACLs derived for their agent: the job's default consumer group and
transactional-id prefix (the agent's name), nothing granted by hand but the
write to the input topic that ``--sample`` needs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from streaming_agents.connectors.acls import AgentAccess, access_for_agent
from streaming_agents.connectors.security import write_security_file
from streaming_agents.registry import SampleRecord, load_job
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import LocalKafka, consume_committed, produce

CLI = [sys.executable, "-m", "streaming_agents.cli.main"]
SAMPLE = 6

AGENT_MODULE = """\
import os

from streaming_agents import ModelSpec
from streaming_agents.registry import SampleRecord, load_job

load_job("claims_triage")
from claims_triage.job import triage_agent  # noqa: E402  (imported by load_job's location)

agent = triage_agent(
    ModelSpec(
        model="openai/claims-triage-fake",
        api_base=os.environ["SA_TEST_FAKE_LLM_BASE"],
        api_key_env="FAKE_LLM_API_KEY",
    )
)
"""


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    started = time.monotonic()
    done = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )
    print(f"{args[0]} process ran {time.monotonic() - started:.1f}s")
    return done.returncode, done.stdout, done.stderr


def valid_claims() -> dict[str, str]:
    """claim_id -> policy_id of the sample records the agent can decide."""
    entry = load_job("claims_triage")
    from claims_triage.job import Claim  # type: ignore[import-not-found]

    assert entry.spec.sample is not None
    out = {}
    for record in entry.spec.sample(SAMPLE, 42):
        try:
            claim = Claim.model_validate_json(record.value)
        except ValueError:
            continue
        out[claim.claim_id] = claim.policy_id
    return out


def test_run_and_replay_claims_triage_over_sasl_ssl(
    secure_kafka: LocalKafka,
    secure_topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    spec = load_job("claims_triage").spec
    assert spec.fake_rules is not None
    fake_llm.configure({"rules": spec.fake_rules()})
    topics = {role: secure_topic_factory(f"sec-triage-{role}") for role in spec.topics}
    group = f"claims-triage-{tag}"
    password = f"q'uo\"te-{tag}"
    access = access_for_agent(
        spec, "claims-triage", principal=f"User:triage-{tag}", topics=topics, group=group
    )
    # --sample writes the input topic with the same setting: allow that one write too.
    access = dataclasses.replace(access, write_topics=(*access.write_topics, topics["claims"]))
    security = secure_kafka.add_agent(access, password, tmp_path / "secrets")
    client_file = write_security_file(tmp_path / "triage.properties", security)
    assert password not in client_file.read_text()

    argv = ["run", "claims_triage", "--bootstrap", secure_kafka.bootstrap]
    argv += ["--kafka-security", str(client_file), "--group-id", group]
    argv += ["--model", "openai/claims-triage-fake", "--api-base", fake_llm.base_url]
    argv += ["--api-key-env", "FAKE_LLM_API_KEY", "--journal-dir", str(tmp_path / "journal")]
    argv += ["--sample", str(SAMPLE), "--bounded", "--checkpoint-ms", "500"]
    for role, name in topics.items():
        argv += ["--topic", f"{role}={name}"]
    code, out, err = cli(argv, tmp_path)
    assert code == 0, err[-3000:]
    assert f"wrote {SAMPLE} sample records to {topics['claims']!r}" in err
    assert password not in out + err

    claims = valid_claims()
    admin = secure_kafka.admin_security
    decisions = [
        json.loads(m.value())
        for m in consume_committed(
            secure_kafka.bootstrap, topics["decisions"], expected=len(claims), security=admin
        )
    ]
    dead = consume_committed(secure_kafka.bootstrap, topics["dlq"], security=admin)
    assert sorted(d["output"]["claim_id"] for d in decisions) == sorted(claims)
    assert all(d["key"] == claims[d["output"]["claim_id"]] for d in decisions)
    assert len(dead) == SAMPLE - len(claims) == 1
    assert fake_llm.stats()["chat_total"] == len(claims)

    # replay the claims over SASL_SSL, answered from the run's journal
    (tmp_path / "secure_triage_agent.py").write_text(AGENT_MODULE)
    admin_file = write_security_file(tmp_path / "admin.properties", admin)  # type: ignore[arg-type]
    shadow = secure_topic_factory("sec-triage-shadow")
    argv = ["replay", "--agent", "secure_triage_agent:agent", "--topic", topics["claims"]]
    argv += ["--shadow-topic", shadow, "--key", "policy_id", "--no-progress"]
    argv += ["--journal", str(tmp_path / "journal" / "claims-triage.sqlite")]
    argv += ["--production-topic", topics["decisions"], "--run-dir", str(tmp_path / "runs")]
    argv += ["--bootstrap", secure_kafka.bootstrap, "--kafka-security", str(admin_file)]
    code, out, err = cli(argv, tmp_path, {"SA_TEST_FAKE_LLM_BASE": fake_llm.base_url})
    assert code == 0, err[-3000:]
    assert f"{len(claims)} outputs, 1 dead letters" in out, out
    assert "LLM calls made: 0" in out, out
    assert fake_llm.stats()["chat_total"] == len(claims)  # nothing new asked
    replayed = [
        json.loads(m.value())
        for m in consume_committed(secure_kafka.bootstrap, shadow, expected=SAMPLE, security=admin)
    ]
    assert all(doc.get("shadow") is True for doc in replayed)
    outputs = [d for d in replayed if d.get("dead_letter") is not True]
    assert sorted(d["output"]["claim_id"] for d in outputs) == sorted(claims)
    by_claim = {d["output"]["claim_id"]: d["output"]["route"] for d in decisions}
    assert {d["output"]["claim_id"]: d["output"]["route"] for d in outputs} == by_claim


def reaching_the_agent(job: str, sample: list[SampleRecord]) -> int:
    """How many sample records the job hands to its agent or dead-letters (one record each)."""
    if job != "claims_compliance":
        return len(sample)
    count = 0  # claims_compliance reviews human_review decisions only, skips the others
    for record in sample:
        try:
            doc = json.loads(record.value)
        except ValueError:
            count += 1
            continue
        route = (doc.get("output") or {}).get("route") if isinstance(doc, dict) else None
        count += route not in ("auto_approve", "request_more_info")
    return count


@pytest.mark.parametrize("job", ["claims_compliance", "catalog_normalisation", "supply_chain"])
def test_shipped_job_runs_over_sasl_ssl_as_its_agent(
    job: str,
    secure_kafka: LocalKafka,
    secure_topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    spec = load_job(job).spec
    assert spec.fake_rules is not None and spec.sample is not None
    fake_llm.configure({"rules": spec.fake_rules()})
    topics = {role: secure_topic_factory(f"sec-{job[:8]}-{role}") for role in spec.topics}
    (agent,) = spec.agents
    # Exactly the derived ACLs: the job's own consumer group and transactional-id prefix
    # (no --group-id), both the agent's name; topics are per test, so sharing the group is safe.
    access = access_for_agent(spec, agent.name, principal=f"User:{agent.name}-{tag}", topics=topics)
    assert access.groups == (agent.name,) and access.transactional_id_prefixes == (agent.name,)
    inputs = tuple(topics[r] for r in agent.inputs)  # --sample writes them
    access = dataclasses.replace(access, write_topics=(*access.write_topics, *inputs))
    password = f"p\"a's-{tag}"
    security = secure_kafka.add_agent(access, password, tmp_path / "secrets")
    client_file = write_security_file(tmp_path / "agent.properties", security)

    argv = ["run", job, "--bootstrap", secure_kafka.bootstrap]
    argv += ["--model", f"openai/{spec.name}-fake", "--api-base", fake_llm.base_url]
    argv += ["--api-key-env", "FAKE_LLM_API_KEY", "--sample", str(SAMPLE), "--bounded"]
    argv += ["--checkpoint-ms", "500"]
    for role, name in topics.items():
        argv += ["--topic", f"{role}={name}"]
    code, out, err = cli(argv, tmp_path, {"STREAMING_AGENTS_KAFKA_SECURITY": str(client_file)})
    assert code == 0, err[-3000:]
    assert password not in out + err

    sample = spec.sample(SAMPLE, 42)
    expected = reaching_the_agent(job, sample)
    admin = secure_kafka.admin_security
    primary = next(r for r in agent.outputs if r != "dlq")
    dead = consume_committed(secure_kafka.bootstrap, topics["dlq"], security=admin)
    outputs = [
        json.loads(m.value())
        for m in consume_committed(
            secure_kafka.bootstrap,
            topics[primary],
            expected=expected - len(dead),
            security=admin,
        )
    ]
    assert outputs, err[-2000:]
    assert len(outputs) + len(dead) == expected
    assert {o["agent"] for o in outputs} == {agent.name}
    assert 1 <= fake_llm.stats()["chat_total"] <= len(sample)


SQL_COPY = """\
CREATE TABLE src (v STRING) WITH (
  'connector' = 'kafka', 'topic' = '${IN_TOPIC}', 'format' = 'raw',
  'dead-letter.topic' = '${DLQ_TOPIC}', 'dead-letter.transactional-id-prefix' = '${GROUP}-dlq',
  'properties.bootstrap.servers' = '${BOOTSTRAP}', 'properties.group.id' = '${GROUP}',
  'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset'
  ${KAFKA_SECURITY});
CREATE TABLE dst (v STRING) WITH (
  'connector' = 'kafka', 'topic' = '${OUT_TOPIC}', 'format' = 'raw',
  'properties.bootstrap.servers' = '${BOOTSTRAP}'
  ${KAFKA_SECURITY});
INSERT INTO dst SELECT UPPER(v) FROM src;
"""


def test_sql_script_reads_and_writes_kafka_over_sasl_ssl(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    src, dst = secure_topic_factory("sec-sql-in"), secure_topic_factory("sec-sql-out")
    dlq = secure_topic_factory("sec-sql-dlq")  # the raw STRING source's invalid UTF-8 goes there
    group, password = f"sql-{tag}", f"s'q\"l-{tag}"
    access = AgentAccess(f"User:sql-{tag}", (src,), (dst, dlq), (group,), (f"sql-{tag}",))
    security = secure_kafka.add_agent(access, password, tmp_path / "secrets")
    client_file = write_security_file(tmp_path / "sql.properties", security)
    admin = secure_kafka.admin_security
    values = [f"event-{i}-{tag}" for i in range(5)]
    produce(secure_kafka.bootstrap, src, [(None, v) for v in values], security=admin)
    script = tmp_path / "copy.sql"
    script.write_text(SQL_COPY)

    argv = ["sql", str(script), "--kafka-security", str(client_file)]
    argv += ["--var", f"IN_TOPIC={src}", "--var", f"OUT_TOPIC={dst}", "--var", f"DLQ_TOPIC={dlq}"]
    argv += ["--var", f"BOOTSTRAP={secure_kafka.bootstrap}", "--var", f"GROUP={group}"]
    code, out, err = cli(argv, tmp_path)
    assert code == 0, err[-3000:]
    assert password not in out + err
    copied = consume_committed(secure_kafka.bootstrap, dst, expected=len(values), security=admin)
    assert sorted(m.value().decode() for m in copied) == sorted(v.upper() for v in values)


def test_a_principal_without_access_is_refused_with_one_clear_error(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    own, victim, other = (secure_topic_factory(f"sec-{n}") for n in ("own", "victim", "other"))
    admin = secure_kafka.admin_security
    produce(secure_kafka.bootstrap, victim, [(None, '{"key": "k"}')], security=admin)
    access = AgentAccess(f"User:nosy-{tag}", (own,), (own,), (f"nosy-{tag}",), (f"nosy-{tag}",))
    security = secure_kafka.add_agent(access, f"n'o\"sy-{tag}", tmp_path / "secrets")
    client_file = write_security_file(tmp_path / "nosy.properties", security)
    argv = ["compare", "--production", victim, "--candidate", other]
    argv += ["--bootstrap", secure_kafka.bootstrap, "--kafka-security", str(client_file)]
    code, _out, err = cli(argv, tmp_path)
    assert code == 2, err[-2000:]
    assert f"topic {victim!r}: the broker refused" in err, err[-2000:]
    assert "authorization" in err.lower()
