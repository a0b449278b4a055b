"""The client-security setting, per-agent ACLs, and the secured broker enforcing them.

Units first (no broker): secrets must be references, the Java properties keep
them references, SQL values are escaped.  Then on the session's secured
broker (``secure_kafka``: SASL_SSL, SCRAM-SHA-512, ACLs) with two agents whose
ACLs come from a registry declaration: each reads and writes its own topics,
neither reaches the other's, and a wrong password is refused by the broker.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

from streaming_agents.connectors.acls import (
    AgentAccess,
    access_for_agent,
    apply_acls,
    bindings,
    describe_acls,
)
from streaming_agents.connectors.security import (
    KAFKA_SECURITY_ENV,
    KafkaSecurity,
    SecretRef,
    client_properties,
    librdkafka_config,
    load_security,
    security_from_env,
    sql_string,
    table_options,
    write_secret_file,
    write_security_file,
)
from streaming_agents.errors import ConfigError, InfrastructureError
from streaming_agents.registry import AgentDecl, JobSpec
from streaming_agents.testing.kafka import LocalKafka, consume_committed, end_offsets, produce

QUOTED = "pa'ss\"wd\\ ü-"


def _no_build(env: Any, ctx: Any) -> None:
    raise AssertionError("not built in these tests")


# -- the setting, without a broker ---------------------------------------------------------


def test_secrets_must_be_references(tmp_path: Path) -> None:
    base = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512"}
    with pytest.raises(ConfigError, match="must be a reference"):
        KafkaSecurity.from_properties({**base, "sasl.username": "a", "sasl.password": "hunter2"})
    with pytest.raises(ConfigError, match=r"sasl\.username and sasl\.password"):
        KafkaSecurity.from_properties({**base, "sasl.jaas.config": "x"})
    with pytest.raises(ConfigError, match=r"needs sasl\.mechanism"):
        KafkaSecurity.from_properties({"security.protocol": "SASL_SSL", "sasl.username": "a"})
    path = tmp_path / "client.properties"
    path.write_text(
        "# as kafka's --command-config\n"
        "security.protocol = SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.username=agent-a\nsasl.password=${env:SA_TEST_PW}\n"
        "ssl.ca.location=/etc/ca.pem\n"
    )
    security = load_security(path)
    assert security.password == SecretRef("env", "SA_TEST_PW")
    assert security.to_properties()["sasl.password"] == "${env:SA_TEST_PW}"
    assert load_security(write_security_file(tmp_path / "copy.properties", security)) == security
    with pytest.raises(ConfigError, match="no ':'"):
        SecretRef("file", "/a:b", "password")


def test_java_properties_keep_the_reference_and_escape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = write_secret_file(tmp_path / "a.secret", QUOTED)
    assert (tmp_path / "a.secret").stat().st_mode & 0o777 == 0o600
    assert ref.resolve() == QUOTED
    assert ref.resolve(".jaas") == QUOTED.replace("\\", "\\\\").replace('"', '\\"')
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", 'us"er', ref, ca_location="/ca.pem")
    props = client_properties(security)
    jaas = props["sasl.jaas.config"]
    assert jaas == (
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
        f' required username="us\\"er" password="${{file:{ref.location}:password.jaas}}";'
    )
    unshaded = client_properties(security, kafka_prefix="")
    assert unshaded["sasl.jaas.config"].startswith("org.apache.kafka.common.security.scram.")
    assert unshaded["config.providers.file.class"].startswith("org.apache.kafka.common.config.")
    assert props["config.providers"] == "file"
    assert props["config.providers.file.class"].endswith("config.provider.FileConfigProvider")
    assert props["ssl.truststore.type"] == "PEM"
    assert not any(QUOTED in v or "pa'ss" in v for v in props.values())
    assert librdkafka_config(security)["sasl.password"] == QUOTED
    # An env password with a quote cannot go into JAAS: refused while it is visible.
    monkeypatch.setenv("SA_TEST_PW", 'a"b')
    env_security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "u", SecretRef("env", "SA_TEST_PW"))
    with pytest.raises(ConfigError, match="secret file"):
        client_properties(env_security)
    monkeypatch.setenv("SA_TEST_PW", "a'b")
    assert 'password="${env:SA_TEST_PW}"' in client_properties(env_security)["sasl.jaas.config"]


def test_sql_values_are_escaped() -> None:
    assert sql_string("it's") == "'it''s'"
    with pytest.raises(ConfigError, match="line breaks"):
        sql_string("a'\n, 'connector' = 'evil")
    options = table_options(None, {"client.id": "x'y"})
    assert options == {"properties.client.id": "x'y"}


def test_acls_follow_the_declaration() -> None:
    job = JobSpec(
        name="pair",
        description="",
        topics={"in": "t-in", "out": "t-out", "dlq": "t-dlq"},
        agents=(AgentDecl("triage", "1", ("in",), ("out", "dlq")),),
        build=_no_build,
    )
    access = access_for_agent(job, "triage", topics={"out": "t-out2"}, audit_topics=["t-audit"])
    assert access == AgentAccess(
        "User:triage", ("t-in",), ("t-out2", "t-dlq", "t-audit"), ("triage",), ("triage",)
    )
    found = {
        (str(b.restype), b.name, str(b.operation), str(b.resource_pattern_type))
        for b in bindings(access)
    }
    assert (
        "ResourceType.TRANSACTIONAL_ID",
        "triage",
        "AclOperation.WRITE",
        "ResourcePatternType.PREFIXED",
    ) in found
    assert (
        "ResourceType.TOPIC",
        "t-in",
        "AclOperation.READ",
        "ResourcePatternType.LITERAL",
    ) in found
    assert not any(name == "t-in" and "WRITE" in op for _, name, op, _ in found)
    with pytest.raises(ConfigError, match="no agent"):
        access_for_agent(job, "nobody")


# -- on the secured broker -------------------------------------------------------------------


class Agent:
    """An agent principal on the secured broker: its topics, group, prefix and setting."""

    def __init__(self, broker: LocalKafka, job: JobSpec, name: str, secret: SecretRef) -> None:
        self.name = name
        self.access = access_for_agent(job, name, transactional_id_prefixes=[f"{name}-tx"])
        self.security = broker.user_security(name, secret)
        self.inputs, self.outputs = self.access.read_topics, self.access.write_topics
        self.group = self.access.groups[0]


@pytest.fixture(scope="module")
def agents(secure_kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Agent]:
    """Agents ``a`` (password with quotes) and ``b``, each with its registry-derived ACLs."""
    tag = uuid.uuid4().hex[:8]
    topics = {f"{r}_{x}": f"{r}-{x}-{tag}" for x in "ab" for r in ("in", "out", "dlq")}
    job = JobSpec(
        name=f"pair-{tag}",
        description="two agents, one broker",
        topics=topics,
        agents=(
            AgentDecl(f"a-{tag}", "1", ("in_a",), ("out_a", "dlq_a")),
            AgentDecl(f"b-{tag}", "1", ("in_b",), ("out_b", "dlq_b")),
        ),
        build=_no_build,
    )
    from streaming_agents.testing.kafka import create_topics

    create_topics(secure_kafka.bootstrap, topics.values(), security=secure_kafka.admin_security)
    folder = tmp_path_factory.mktemp("agent-secrets")
    out = {}
    for key, decl, password in (("a", job.agents[0], QUOTED + tag), ("b", job.agents[1], tag)):
        secure_kafka.add_user(decl.name, password)
        secret = write_secret_file(folder / f"{key}.secret", password)
        out[key] = Agent(secure_kafka, job, decl.name, secret)
        apply_acls(secure_kafka.bootstrap, secure_kafka.admin_security, bindings(out[key].access))
    return out


def transactional_write(
    bootstrap: str, security: KafkaSecurity, topic: str, txn_id: str, n: int
) -> None:
    """Write ``n`` records in one transaction (as Flink's exactly-once sink does)."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "transactional.id": txn_id}
    producer = Producer({**conf, **librdkafka_config(security)})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(n):
        producer.produce(topic, value=f"v{i}".encode())
    producer.commit_transaction(30)


def test_agent_reads_its_inputs_and_writes_its_outputs(
    secure_kafka: LocalKafka, agents: dict[str, Agent]
) -> None:
    a = agents["a"]
    boot = secure_kafka.bootstrap
    produce(boot, a.inputs[0], [("k", "hello")], security=secure_kafka.admin_security)
    got = consume_committed(
        boot, a.inputs[0], expected=1, security=a.security, group_id=a.group, timeout_s=30
    )
    assert [m.value() for m in got] == [b"hello"]
    transactional_write(boot, a.security, a.outputs[0], f"{a.name}-tx-0", 3)
    produce(boot, a.outputs[1], [(None, "dead")], security=a.security)
    read = consume_committed(boot, a.outputs[0], expected=3, security=secure_kafka.admin_security)
    assert [m.value() for m in read] == [b"v0", b"v1", b"v2"]
    listed = describe_acls(boot, secure_kafka.admin_security, f"User:{a.name}")
    assert len(listed) == len(bindings(a.access))


def test_agent_cannot_reach_another_agents_topics(
    secure_kafka: LocalKafka, agents: dict[str, Agent]
) -> None:
    a, b = agents["a"], agents["b"]
    boot, admin = secure_kafka.bootstrap, secure_kafka.admin_security
    produce(boot, b.inputs[0], [("k", "for b only")], security=admin)
    before = {t: sum(end_offsets(boot, t, security=admin).values()) for t in b.outputs}
    with pytest.raises(InfrastructureError, match="Topic authorization failed"):
        consume_committed(boot, b.inputs[0], security=a.security, group_id=a.group, timeout_s=20)
    with pytest.raises(InfrastructureError, match="Group authorization failed"):
        consume_committed(boot, a.inputs[0], security=a.security, group_id=b.group, timeout_s=20)
    for topic in b.outputs:
        with pytest.raises(InfrastructureError, match="Topic authorization failed"):
            produce(boot, topic, [(None, "from a")], security=a.security, timeout_s=20)
    with pytest.raises(KafkaException, match="TRANSACTIONAL_ID_AUTHORIZATION_FAILED"):
        transactional_write(boot, a.security, a.outputs[0], f"{b.name}-tx-0", 1)
    after = {t: sum(end_offsets(boot, t, security=admin).values()) for t in b.outputs}
    assert after == before, "agent a wrote nothing to b's outputs"


def test_wrong_password_is_refused_and_moves_nothing(
    secure_kafka: LocalKafka, agents: dict[str, Agent], tmp_path: Path
) -> None:
    a = agents["a"]
    boot, admin = secure_kafka.bootstrap, secure_kafka.admin_security
    wrong = secure_kafka.user_security(a.name, write_secret_file(tmp_path / "w", "not-it"))
    before = sum(end_offsets(boot, a.outputs[0], security=admin).values())
    with pytest.raises(InfrastructureError, match=r"Authentication failed.*invalid credentials"):
        consume_committed(boot, a.inputs[0], security=wrong, group_id=a.group, timeout_s=20)
    errors: list[str] = []
    conf = {"bootstrap.servers": boot, "message.timeout.ms": 8000, **librdkafka_config(wrong)}
    producer = Producer({**conf, "error_cb": lambda err: errors.append(str(err))})
    producer.produce(a.outputs[0], value=b"should not land")
    started = time.monotonic()
    assert producer.flush(20) == 0
    assert any("Authentication failed" in e for e in errors), errors
    print(f"refused in {time.monotonic() - started:.1f}s: {errors[0]}")
    assert sum(end_offsets(boot, a.outputs[0], security=admin).values()) == before


def test_acls_cli_applies_a_shipped_jobs_declaration(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    """``python -m streaming_agents.connectors.acls claims_triage --apply``, then use them."""
    topics = {role: secure_topic_factory(f"ct-{role}") for role in ("claims", "decisions", "dlq")}
    admin = secure_kafka.admin_security
    assert admin is not None
    admin_file = tmp_path / "admin.properties"
    admin_file.write_text("".join(f"{k}={v}\n" for k, v in admin.to_properties().items()))
    overrides = [arg for role, name in topics.items() for arg in ("--topic", f"{role}={name}")]
    cmd = [sys.executable, "-m", "streaming_agents.connectors.acls", "claims_triage", *overrides]
    cmd += ["--bootstrap", secure_kafka.bootstrap, "--security", str(admin_file), "--apply"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"READ             topic {topics['claims']}" in done.stdout
    assert "# applied 7 ACLs for User:claims-triage" in done.stdout
    password = uuid.uuid4().hex
    secure_kafka.add_user("claims-triage", password)
    agent = secure_kafka.user_security(
        "claims-triage", write_secret_file(tmp_path / "ct.secret", password)
    )
    boot = secure_kafka.bootstrap
    produce(boot, topics["claims"], [("p1", "claim")], security=admin)
    got = consume_committed(
        boot, topics["claims"], expected=1, security=agent, group_id="claims-triage"
    )
    assert [m.value() for m in got] == [b"claim"]
    transactional_write(boot, agent, topics["decisions"], "claims-triage-decisions-0", 1)
    with pytest.raises(InfrastructureError, match="Topic authorization failed"):
        produce(boot, topics["claims"], [(None, "forged claim")], security=agent)
    with pytest.raises(InfrastructureError, match="Topic authorization failed"):
        consume_committed(boot, topics["decisions"], security=agent, group_id="claims-triage")


def test_truststore_password_and_the_environment_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    props = {
        "security.protocol": "SSL",
        "ssl.truststore.location": "/etc/trust.p12",
        "ssl.truststore.password": "${env:SA_TEST_TRUST_PW}",
    }
    security = KafkaSecurity.from_properties(props)
    java = client_properties(security, kafka_prefix="")
    assert java["ssl.truststore.password"] == "${env:SA_TEST_TRUST_PW}"
    assert java["ssl.truststore.type"] == "PKCS12"
    assert java["config.providers"] == "env"
    assert java["config.providers.env.class"].endswith("EnvVarConfigProvider")
    with pytest.raises(ConfigError, match=r"set ssl\.ca\.location"):
        librdkafka_config(security)  # librdkafka reads PEM only
    monkeypatch.delenv(KAFKA_SECURITY_ENV, raising=False)
    assert security_from_env() is None
    monkeypatch.setenv(KAFKA_SECURITY_ENV, str(write_security_file(tmp_path / "s", security)))
    assert security_from_env() == security


def test_acls_cli_prints_one_agent_with_its_own_principal() -> None:
    base = [sys.executable, "-m", "streaming_agents.connectors.acls", "claims_triage"]
    args = ["--agent", "claims-triage", "--principal", "User:svc", "--txn-prefix", "ct-"]
    done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "User:svc  WRITE            transactional_id ct- (prefixed)" in lines
    assert "User:svc  READ             group claims-triage" in lines
    assert len(lines) == 7 and all(line.startswith("User:svc ") for line in lines)
    refused = subprocess.run([*base, "--agent", "x"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert (
        refused.stderr == "error: job 'claims-triage' has no agent 'x'; its agents: claims-triage\n"
    )
