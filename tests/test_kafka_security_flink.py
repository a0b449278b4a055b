"""A Flink job on the secured broker: its own principal, a password with quotes, no leak.

``tests/jobs/secure_copy_job.py`` runs as a new process (a local mini-cluster)
with one client-security file whose password is a ``${file:...}`` reference:
the Kafka source, the exactly-once sink and the audit sink (Table API, SQL
text) all connect over SASL_SSL as agent ``copy-<tag>``, whose password holds
``'``, ``"`` and ``\\`` and whose ACLs allow only its topics.  Then the
password (raw and JAAS-escaped) and the admin's password are searched for in
the serialised JobGraph and its JSON plan (what the REST API's
``/jobs/<id>/plan`` shows), the job's output, PyFlink's log folder, the
retained checkpoints, files the run created in the temp folder, and every
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
from streaming_agents.connectors.acls import AgentAccess, apply_acls, bindings
from streaming_agents.connectors.security import jaas_quote, write_secret_file
from streaming_agents.testing.cluster import flink_home
from streaming_agents.testing.kafka import LocalKafka, consume_committed, produce

JOB = Path(__file__).parent / "jobs" / "secure_copy_job.py"
RECORDS = 12


def record_bytes(msg: Any) -> bytes:
    headers = b"".join(k.encode() + (v or b"") for k, v in (msg.headers() or []))
    return bytes(msg.value() or b"") + headers


def test_flink_job_over_sasl_ssl_keeps_the_password_out(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:10]
    name, password = f"copy-{tag}", f"q'uo\"te\\-LEAKCHECK-{tag}"
    topics = {role: secure_topic_factory(f"sec-{role}") for role in ("in", "out", "audit")}
    group, prefix = f"copy-group-{tag}", f"copy-tx-{tag}"
    admin = secure_kafka.admin_security
    secure_kafka.add_user(name, password)
    access = AgentAccess(
        f"User:{name}", (topics["in"],), (topics["out"], topics["audit"]), (group,), (prefix,)
    )
    apply_acls(secure_kafka.bootstrap, admin, bindings(access))
    secrets_dir = tmp_path / "secrets"
    security = secure_kafka.user_security(name, write_secret_file(secrets_dir / "a", password))
    client_file = tmp_path / "client.properties"
    client_file.write_text("".join(f"{k}={v}\n" for k, v in security.to_properties().items()))
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
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(JOB), *args], capture_output=True, timeout=300, env=dict(os.environ)
    )
    output = done.stdout + done.stderr
    (tmp_path / "job-output.txt").write_bytes(output)
    assert done.returncode == 0, output.decode(errors="replace")[-4000:]
    print(f"secured job ran in {time.monotonic() - started:.1f}s")

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
    }
    probes = {"reference": f"${{file:{secrets_dir / 'a'}:password.jaas}}"}
    probes["masked jaas"] = "sasl.jaas.config = [hidden]"
    job_graph = (graph_dir / "jobgraph.bin").read_bytes()
    hits: list[Hit] = find_bytes("JobGraph", job_graph, {**secrets, **probes})
    hits += find_bytes("JSON plan", (graph_dir / "plan.json").read_bytes(), secrets)
    hits += find_bytes("job output", output, secrets)
    file_hits, scanned = find_files([flink_home() / "log", checkpoints], {**secrets, **probes})
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
    assert any(n == "masked jaas" for n, _ in found), "the Kafka clients logged their config"
