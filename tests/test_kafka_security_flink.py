"""A Flink job on the secured broker: its own principal, a password with quotes, no leak.

``tests/jobs/secure_copy_job.py`` runs as a new process (a local mini-cluster)
with one client-security file whose password is a ``${file:...}`` reference:
the Kafka source, the exactly-once sink and the audit sink (Table API, SQL
text) all connect over SASL_SSL as agent ``copy-<tag>``, whose password holds
``'``, ``"``, ``\\`` and a non-ASCII letter, and whose ACLs allow only its
topics.  Then the password (raw and JAAS-escaped) and the admin's password are
searched for in the serialised JobGraph and its JSON plan (what the REST API's
``/jobs/<id>/plan`` shows), the job's output, its Flink log, PyFlink's log
folder, the retained checkpoints, files the run created in the temp folder, and every
output and audit record.  Probes show the searches could see the Kafka
properties (the reference is in the JobGraph; the clients' logged configs
mask ``sasl.jaas.config``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streaming_agents.chaos.secrets import Hit, find_bytes, find_files
from streaming_agents.connectors.acls import AgentAccess
from streaming_agents.connectors.security import jaas_quote, write_security_file
from streaming_agents.testing.cluster import flink_home
from streaming_agents.testing.kafka import LocalKafka, consume_committed, end_offsets, produce

JOB = Path(__file__).parent / "jobs" / "secure_copy_job.py"
RECORDS = 12


def record_bytes(msg: Any) -> bytes:
    headers = b"".join(k.encode() + (v or b"") for k, v in (msg.headers() or []))
    return bytes(msg.value() or b"") + headers


def run_job(args: list[str], log_dir: Path) -> tuple[int, bytes]:
    """Run the job script as a new process (its Flink log in ``log_dir``); exit code, output."""
    started = time.monotonic()
    env = {**os.environ, "FLINK_LOG_DIR": str(log_dir)}  # PyFlink's own folder is shared
    done = subprocess.run(
        [sys.executable, str(JOB), *args], capture_output=True, timeout=300, env=env
    )
    print(f"secured job process ran {time.monotonic() - started:.1f}s")
    return done.returncode, done.stdout + done.stderr


def add_agent(broker: LocalKafka, access: AgentAccess, password: str, folder: Path) -> Path:
    """A SCRAM user with ``access``; returns its client-security file."""
    security = broker.add_agent(access, password, folder)
    return write_security_file(folder / f"{access.principal[5:]}.properties", security)


def test_flink_job_over_sasl_ssl_keeps_the_password_out(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    name, password = f"copy-{tag}", f"q'uo\"te\\ü-LEAKCHECK-{tag}"
    topics = {role: secure_topic_factory(f"sec-{role}") for role in ("in", "out", "audit")}
    group, prefix = f"copy-group-{tag}", f"copy-tx-{tag}"
    admin = secure_kafka.admin_security
    access = AgentAccess(
        f"User:{name}", (topics["in"],), (topics["out"], topics["audit"]), (group,), (prefix,)
    )
    secrets_dir = tmp_path / "secrets"
    client_file = add_agent(secure_kafka, access, password, secrets_dir)
    values = [f"event-{i}-{tag}" for i in range(RECORDS)]
    produce(secure_kafka.bootstrap, topics["in"], [(None, v) for v in values], security=admin)

    started_wall = time.time()
    graph_dir, checkpoints = tmp_path / "graph", tmp_path / "checkpoints"
    args = [
        *("--bootstrap", secure_kafka.bootstrap, "--security", str(client_file)),
        *("--in", topics["in"], "--out", topics["out"], "--audit", topics["audit"]),
        *("--group", group, "--txn-prefix", prefix, "--graph-dir", str(graph_dir)),
        *("--checkpoint-dir", str(checkpoints)),
    ]
    log_dir = tmp_path / "flink-log"
    returncode, output = run_job(args, log_dir)
    assert returncode == 0, output.decode(errors="replace")[-4000:]

    out = consume_committed(secure_kafka.bootstrap, topics["out"], expected=RECORDS, security=admin)
    assert sorted(m.value().decode() for m in out) == sorted(v.upper() for v in values)
    audit = consume_committed(
        secure_kafka.bootstrap, topics["audit"], expected=RECORDS, security=admin
    )
    assert len(audit) == RECORDS and all(dict(m.headers())["kind"] == b"copied" for m in audit)

    admin_password = secure_kafka.admin_secret.resolve()
    secrets = {
        "password": password,
        "jaas-escaped password": jaas_quote(password)[1:-1],
        "admin password": admin_password,
        "broker keystore password": (secure_kafka.workdir / "tls" / "store.secret").read_text(),
    }
    probes = {"reference": f"${{file:{secrets_dir / name}.secret:password.jaas}}"}
    probes["masked jaas"] = "sasl.jaas.config = [hidden]"
    job_graph = (graph_dir / "jobgraph.bin").read_bytes()
    hits: list[Hit] = find_bytes("JobGraph", job_graph, {**secrets, **probes})
    hits += find_bytes("JSON plan", (graph_dir / "plan.json").read_bytes(), secrets)
    hits += find_bytes("job output", output, secrets)
    roots = [log_dir, flink_home() / "log", checkpoints]
    file_hits, scanned = find_files(roots, {**secrets, **probes})
    tmp_hits, tmp_scanned = find_files([Path(tempfile.gettempdir())], secrets, started_wall)
    hits += file_hits + tmp_hits
    for msg in out + audit:
        hits += find_bytes("topic record", record_bytes(msg), secrets)
    print(f"searched {scanned} log/checkpoint files and {tmp_scanned} new temp files")

    # The secret file itself holds the password, by design (0600); nothing else may.
    leaks = sorted(
        {(h.name, h.where) for h in hits if h.name in secrets}
        - {(n, w) for n, w in ((h.name, h.where) for h in hits) if w.startswith(str(secrets_dir))}
    )
    assert not leaks, f"secrets found (name, where): {leaks}"
    found = {(h.name, h.where) for h in hits}
    assert ("reference", "JobGraph") in found, "the JobGraph holds the Kafka properties"
    assert any(n == "masked jaas" and w.startswith(str(log_dir)) for n, w in found), found


def test_flink_job_as_another_agent_is_refused_and_moves_nothing(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    """Agent ``intruder`` (valid credentials, its own ACLs) runs the job on ``victim``'s topics."""
    tag = uuid.uuid4().hex[:10]
    victim = {role: secure_topic_factory(f"victim-{role}") for role in ("in", "out", "audit")}
    own = {role: secure_topic_factory(f"intruder-{role}") for role in ("in", "out", "audit")}
    access = AgentAccess(
        f"User:intruder-{tag}", (own["in"],), (own["out"], own["audit"]), (f"g-{tag}",), (tag,)
    )
    client_file = add_agent(secure_kafka, access, f"pw-{tag}", tmp_path / "secrets")
    admin = secure_kafka.admin_security
    produce(secure_kafka.bootstrap, victim["in"], [(None, "private")], security=admin)
    args = [
        *("--bootstrap", secure_kafka.bootstrap, "--security", str(client_file)),
        *("--in", victim["in"], "--out", victim["out"], "--audit", victim["audit"]),
        *("--group", f"g-{tag}", "--txn-prefix", tag, "--graph-dir", str(tmp_path / "graph")),
        *("--checkpoint-dir", str(tmp_path / "checkpoints")),
    ]
    returncode, output = run_job(args, tmp_path / "flink-log")
    text = output.decode(errors="replace")
    assert returncode != 0, text[-3000:]
    assert "TopicAuthorizationException: Topic authorization failed" in text, text[-3000:]
    assert f"Failed to get metadata for topics [{victim['in']}]" in text, text[-3000:]
    for topic in (victim["out"], victim["audit"], own["out"], own["audit"]):
        assert sum(end_offsets(secure_kafka.bootstrap, topic, security=admin).values()) == 0
