"""Mutual TLS as an alternative to SCRAM: a client certificate is the agent's identity.

The secured broker also listens with ``SSL`` and ``ssl.client.auth=required``
(``LocalKafka.mtls_bootstrap``); ``ssl.principal.mapping.rules`` turns the
certificate's ``CN=<name>`` into ``User:<name>``, so the same ACLs apply.
``LocalKafka.mtls_security(name)`` issues a certificate signed by the test CA in
a PKCS12 keystore whose password is a reference to a 0600 secret file.

* librdkafka clients: an agent with a certificate reads and writes exactly its
  topics; another certificate without ACLs is refused; a client without a
  certificate cannot connect at all;
* the Flink job (``tests/jobs/secure_copy_job.py``: Kafka source, exactly-once
  sink and audit sink, a new process on a mini-cluster) copies a topic over
  mutual TLS as its own principal; the keystore password is in neither the
  JobGraph (which holds its reference) nor the job's output and logs;
* the setting's properties round-trip and keep references.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from test_kafka_security_flink import run_job

from streaming_agents.chaos.secrets import find_bytes, find_files
from streaming_agents.connectors.acls import AgentAccess, apply_acls, bindings
from streaming_agents.connectors.security import (
    KafkaSecurity,
    client_properties,
    librdkafka_config,
    write_security_file,
)
from streaming_agents.errors import ConfigError, InfrastructureError
from streaming_agents.testing.kafka import LocalKafka, consume_committed, produce

RECORDS = 6


def test_keystore_setting_keeps_references() -> None:
    props = {
        "security.protocol": "SSL",
        "ssl.ca.location": "/etc/sa/ca.pem",
        "ssl.keystore.location": "/etc/sa/agent.p12",
        "ssl.keystore.password": "${file:/etc/sa/agent.secret:password}",
    }
    security = KafkaSecurity.from_properties(props)
    assert security.to_properties() == props
    java = client_properties(security, kafka_prefix="")
    assert java["ssl.keystore.password"] == "${file:/etc/sa/agent.secret:password}"
    assert java["ssl.key.password"] == java["ssl.keystore.password"]
    assert java["ssl.keystore.type"] == "PKCS12" and java["config.providers"] == "file"
    with pytest.raises(ConfigError, match="never the secret"):
        KafkaSecurity.from_properties({**props, "ssl.keystore.password": "hunter2"})
    with pytest.raises(ConfigError, match="go together"):
        KafkaSecurity.from_properties({k: v for k, v in props.items() if "password" not in k})
    with pytest.raises(ConfigError, match=r"security\.protocol is PLAINTEXT"):
        KafkaSecurity.from_properties({**props, "security.protocol": "PLAINTEXT"})


def test_client_certificates_are_identities_under_acls(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    own, other = secure_topic_factory("mtls-own"), secure_topic_factory("mtls-other")
    name = f"mtls-{tag}"
    access = AgentAccess(f"User:{name}", (own,), (own,), (f"g-{tag}",), (name,))
    apply_acls(secure_kafka.bootstrap, secure_kafka.admin_security, bindings(access))
    security = secure_kafka.mtls_security(name)
    assert security.keystore_password is not None
    password = security.keystore_password.resolve()
    assert password not in write_security_file(tmp_path / "c.properties", security).read_text()
    mtls = secure_kafka.mtls_bootstrap

    produce(mtls, own, [(None, f"hello-{tag}")], security=security)
    got = consume_committed(mtls, own, expected=1, security=security, group_id=f"g-{tag}")
    assert [m.value().decode() for m in got] == [f"hello-{tag}"]
    with pytest.raises(InfrastructureError, match=r"(?i)authoriz"):
        produce(mtls, other, [(None, "not mine")], security=security)

    stranger = secure_kafka.mtls_security(f"stranger-{tag}")  # a valid certificate, no ACLs
    with pytest.raises(InfrastructureError, match=r"(?i)authoriz"):
        produce(mtls, own, [(None, "intruder")], security=stranger)
    no_cert = KafkaSecurity(protocol="SSL", ca_location=str(secure_kafka.ca_pem))
    with pytest.raises(InfrastructureError):
        produce(mtls, own, [(None, "anonymous")], security=no_cert, timeout_s=5)
    assert "ssl.keystore.password" in librdkafka_config(security)


def test_flink_job_over_mutual_tls(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = {role: secure_topic_factory(f"mtls-{role}") for role in ("in", "out", "audit")}
    name, group, prefix = f"mtls-copy-{tag}", f"mtls-g-{tag}", f"mtls-tx-{tag}"
    access = AgentAccess(
        f"User:{name}", (topics["in"],), (topics["out"], topics["audit"]), (group,), (prefix,)
    )
    admin = secure_kafka.admin_security
    apply_acls(secure_kafka.bootstrap, admin, bindings(access))
    security = secure_kafka.mtls_security(name)
    client_file = write_security_file(tmp_path / "mtls.properties", security)
    values = [f"event-{i}-{tag}" for i in range(RECORDS)]
    produce(secure_kafka.bootstrap, topics["in"], [(None, v) for v in values], security=admin)
    graph_dir = tmp_path / "graph"
    args = [
        *("--bootstrap", secure_kafka.mtls_bootstrap, "--security", str(client_file)),
        *("--in", topics["in"], "--out", topics["out"], "--audit", topics["audit"]),
        *("--group", group, "--txn-prefix", prefix, "--graph-dir", str(graph_dir)),
        *("--checkpoint-dir", str(tmp_path / "checkpoints")),
    ]
    returncode, output = run_job(args, tmp_path / "flink-log")
    assert returncode == 0, output.decode(errors="replace")[-4000:]
    out = consume_committed(secure_kafka.bootstrap, topics["out"], expected=RECORDS, security=admin)
    assert sorted(m.value().decode() for m in out) == sorted(v.upper() for v in values)
    audit = consume_committed(
        secure_kafka.bootstrap, topics["audit"], expected=RECORDS, security=admin
    )
    assert len(audit) == RECORDS

    assert security.keystore_password is not None
    secrets = {"keystore password": security.keystore_password.resolve()}
    probes = {"reference": security.keystore_password.text()}
    hits = find_bytes("JobGraph", (graph_dir / "jobgraph.bin").read_bytes(), {**secrets, **probes})
    hits += find_bytes("job output", output, secrets)
    hits += find_files([tmp_path / "flink-log", tmp_path / "checkpoints"], secrets)[0]
    assert not [h for h in hits if h.name in secrets], hits
    assert any(h.name == "reference" for h in hits), "the JobGraph holds the keystore settings"
