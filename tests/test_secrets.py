"""Secrets stay out of logs, checkpoints, savepoints, the journal and every output topic.

The chaos job (``jobs/chaos/job.py``) runs on a dedicated standalone cluster
(rendered from ``flink-conf/``) that gets two recognisable secrets the way a
deployment would hand them over:

* an LLM API key in ``SA_LEAKCHECK_API_KEY``, in the environment of the
  JobManager and TaskManagers only (the agent's ``ModelSpec.api_key_env``;
  workers read it at call time).  A recording proxy in front of the fake LLM
  proves the key was really sent;
* a Kafka SASL password in ``SA_LEAKCHECK_KAFKA_PASSWORD``, in the
  environment of the ``flink`` CLI only: the job script reads it while it
  builds the job and passes it to the source and both exactly-once sinks as
  ``sasl.jaas.config``.  The local broker has no SASL listener, so
  ``security.protocol`` stays ``PLAINTEXT``: the Kafka clients hold the
  password (the TaskManager log shows their configs with ``sasl.jaas.config =
  [hidden]``) but never send it.

With faults on (dead letters carry error texts) and an audit topic, the test
searches: the cluster's whole run folder (JobManager/TaskManager logs and
``.out`` files, retained checkpoints, the savepoint from ``flink stop``, blob
and temporary folders), the client log right after ``flink run`` (each CLI
call overwrites it), PyFlink's own log folder, files the run created in the
system temp folder, the SQLite journal, the REST API's views of the job, and
every record (values and headers) of the output, dead-letter and audit
topics.  Probes (strings known to be in a place) show each search could see
content there.

Flink's stock client logging lists the ``flink run -py`` driver's environment,
masking only variables whose *names* Flink deems sensitive (``OPENAI_API_KEY``
is written in clear); the project's clusters raise that logger to WARN.  The
two tests after it show both.

``test_scram_password_is_resolved_on_the_workers_only`` runs a job over
SASL_SSL on the secured broker (``secure_kafka``), the SCRAM password a
``${env:...}`` reference that only the JobManager and TaskManagers can
resolve, and searches the same places plus the serialised JobGraph.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from streaming_agents.chaos.cluster import ChaosCluster
from streaming_agents.chaos.harness import JOB
from streaming_agents.chaos.secrets import Hit, find_bytes, find_files
from streaming_agents.connectors.acls import AgentAccess, apply_acls, bindings
from streaming_agents.connectors.security import SecretRef
from streaming_agents.errors import InfrastructureError
from streaming_agents.testing.cluster import flink_home
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import LocalKafka, consume_committed, produce

API_ENV, PASSWORD_ENV = "SA_LEAKCHECK_API_KEY", "SA_LEAKCHECK_KAFKA_PASSWORD"
KEYS, PER_KEY = 5, 6


class RecordingProxy:
    """Forwards POSTs to the fake LLM and remembers the Authorization headers it saw."""

    def __init__(self, target: str) -> None:
        self.authorizations: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                proxy.authorizations.add(self.headers.get("Authorization", ""))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = urllib.request.Request(target + self.path, data=body, method="POST")
                request.add_header("Content-Type", "application/json")
                try:
                    with urllib.request.urlopen(request, timeout=30) as resp:
                        status, headers, reply = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as exc:
                    status, headers, reply = exc.code, exc.headers, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if headers.get("Retry-After"):
                    self.send_header("Retry-After", headers["Retry-After"])
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    return consume_committed(bootstrap, topic, timeout_s=60, idle_s=3)


def rest_snapshot(cluster: ChaosCluster, job_id: str) -> dict[str, bytes]:
    """What the REST API (and the web UI) shows about the job and the cluster."""
    paths = [
        f"/jobs/{job_id}",
        f"/jobs/{job_id}/config",
        f"/jobs/{job_id}/plan",
        f"/jobs/{job_id}/exceptions",
        f"/jobs/{job_id}/checkpoints",
        "/jobmanager/config",
        "/jobmanager/environment",
        *(f"/taskmanagers/{tm['id']}" for tm in cluster.taskmanagers()),
    ]
    views = {}
    for path in paths:
        try:
            views[path] = json.dumps(cluster.rest(path)).encode()
        except InfrastructureError:
            continue  # not served by this Flink version
    return views


def record_bytes(msg: Any) -> bytes:
    headers = b"".join(k.encode() + (v or b"") for k, v in (msg.headers() or []))
    return bytes(msg.value() or b"") + headers


def client_logs(cluster: ChaosCluster) -> bytes:
    """The ``flink`` CLI's log: each CLI call overwrites it, so read it after each call."""
    return b"".join(path.read_bytes() for path in cluster.log_dir.glob("*client*.log"))


@pytest.mark.cluster
def test_secrets_stay_out_of_logs_state_journal_and_topics(
    kafka_bootstrap: str,
    fake_llm: FakeLLM,
    topic_factory: Callable[..., str],
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex
    secrets = {"api key": f"sk-LEAKCHECK-{tag}", "kafka password": f"pw-LEAKCHECK-{tag}"}
    probe = {"memory probe": "k1#"}  # in key k1's memory: its prompts and the echo replies
    started_wall = time.time()
    fake_llm.configure({"rate_500": 0.3, "latency_ms": 20})  # some events dead-lettered
    proxy = RecordingProxy(fake_llm.base_url.removesuffix("/v1"))
    cluster = ChaosCluster(
        tmp_path / "flink",
        extra_env={API_ENV: secrets["api key"]},
        client_env={PASSWORD_ENV: secrets["kafka password"]},
    )
    topics = {name: topic_factory(f"leak-{name}") for name in ("in", "out", "dlq", "audit")}
    events = [
        (f"k{k}", json.dumps({"k": f"k{k}", "seq": s})) for s in range(PER_KEY) for k in range(KEYS)
    ]
    produce(kafka_bootstrap, topics["in"], events)
    journal = tmp_path / "journal.sqlite"
    args = [
        *("--bootstrap", kafka_bootstrap, "--in", topics["in"], "--out", topics["out"]),
        *("--dlq", topics["dlq"], "--audit", topics["audit"]),
        *("--api-base", proxy.base_url, "--api-key-env", API_ENV),
        *("--kafka-password-env", PASSWORD_ENV, "--journal", str(journal)),
        *("--txn-prefix", f"leak-{tag[:8]}", "--group-id", f"leak-{tag[:8]}"),
        *("--checkpoint-ms", "1000", "--parallelism", "1", "--num-retries", "0"),
    ]
    hits: list[Hit] = []
    cluster.up()
    try:
        job_id = cluster.submit_py(JOB, args)
        submit_log = client_logs(cluster)
        hits += find_bytes("client log of `flink run`", submit_log, secrets)
        cluster.wait_job(job_id, {"RUNNING"}, timeout_s=120)
        deadline = time.monotonic() + 180
        outputs: list[Any] = []
        dead: list[Any] = []
        with ThreadPoolExecutor(1) as pool:  # both topics read at the same time
            while len(outputs) + len(dead) < len(events) and time.monotonic() < deadline:
                reading = pool.submit(read_topic, kafka_bootstrap, topics["out"])
                dead = read_topic(kafka_bootstrap, topics["dlq"])
                outputs = reading.result()
        assert len(outputs) + len(dead) == len(events), (len(outputs), len(dead))
        assert outputs and dead, "faults on: both outputs and dead letters"
        assert cluster.latest_checkpoint(job_id) is not None
        rest_views = rest_snapshot(cluster, job_id)
        # The retained checkpoints while the job runs; then a savepoint with `flink stop`.
        hits += find_files([cluster.checkpoint_dir], {**secrets, **probe})[0]
        savepoint = Path(urlparse(cluster.stop_with_savepoint(job_id)).path)
        cluster.wait_job(job_id, {"FINISHED"}, timeout_s=60)
        audit = read_topic(kafka_bootstrap, topics["audit"])
    finally:
        proxy.close()
        cluster.down()
    file_hits, scanned = find_files(
        [
            cluster.run_dir,  # logs and .out files, checkpoints, savepoint, blobs, tmp
            savepoint,
            flink_home() / "log",
            journal.parent,  # the journal and its -wal/-shm files
        ],
        {**secrets, **probe, "masked jaas": "sasl.jaas.config = [hidden]"},
    )
    tmp_hits, tmp_scanned = find_files([Path(tempfile.gettempdir())], secrets, started_wall)
    hits += file_hits + tmp_hits
    for name, records in (("out", outputs), ("dlq", dead), ("audit", audit)):
        for msg in records:
            hits += find_bytes(f"topic {name}", record_bytes(msg), {**secrets, **probe})
    for path, body in rest_views.items():
        hits += find_bytes(f"REST {path}", body, secrets)
    print(f"searched {scanned} files, {tmp_scanned} new temp files, {len(rest_views)} REST views")

    # The API key was really used: the proxy in front of the fake LLM saw it on every call.
    assert proxy.authorizations == {f"Bearer {secrets['api key']}"}, "key not sent"
    leaks = sorted({(h.name, h.where) for h in hits if h.name in secrets})
    assert not leaks, f"secrets found (name, where): {leaks}"
    # Each search could see content: memory in checkpoints, savepoint, journal, outputs...
    found = {f"{h.name} @ {h.where}" for h in hits}
    probes = [h.where for h in hits if h.name == "memory probe"]
    assert any("/chk-" in where for where in probes), found
    assert any(where.startswith(str(savepoint)) for where in probes), found
    assert any(where.startswith(str(journal)) for where in probes), found
    assert "topic out" in probes, found
    # ...the Kafka clients held the password (their logged configs mask it), and the
    # client log, written, does not list the driver's environment (project log config).
    assert any(h.name == "masked jaas" and "taskexecutor" in h.where for h in hits), found
    assert b"PythonDriver" in submit_log and PASSWORD_ENV.encode() not in submit_log
    assert audit, "the audit topic has records"


def flink_run_client_log(tmp_path: Path, env: dict[str, str], mask: bool) -> bytes:
    """The client log of ``flink run -py`` on a script that submits nothing (no cluster needed)."""
    script = tmp_path / "no_job.py"
    script.write_text("print('driver ran')\n")
    cluster = ChaosCluster(tmp_path / f"run-{mask}", client_env=env, mask_client_env_log=mask)
    cluster.render_conf()
    assert "driver ran" in cluster._script("flink", "run", "-py", str(script))
    log = client_logs(cluster)
    assert b"PythonDriver" in log or b"flink" in log.lower(), "the client log was written"
    return log


def test_stock_flink_client_log_lists_the_environment(tmp_path: Path) -> None:
    """Why the project's clusters mask ``PythonEnvUtils``: Flink 2.3's stock client log leaks.

    ``flink run -py`` logs its Python driver's environment at INFO, masking only
    names Flink deems sensitive (password, secret, token, apikey, ...):
    ``OPENAI_API_KEY`` is written in clear, a ``..._PASSWORD`` variable masked.
    """
    secret = f"sk-LEAKCHECK-{uuid.uuid4().hex}"
    env = {"OPENAI_API_KEY": secret, "SA_LEAKCHECK_KAFKA_PASSWORD": secret}
    log = flink_run_client_log(tmp_path, env, mask=False)
    assert f"OPENAI_API_KEY={secret}".encode() in log
    assert b"SA_LEAKCHECK_KAFKA_PASSWORD=******" in log


def test_project_client_log_keeps_the_environment_out(tmp_path: Path) -> None:
    """Every cluster the project renders (``make cluster-up``, tests, chaos) masks it."""
    secret = f"sk-LEAKCHECK-{uuid.uuid4().hex}"
    env = {"OPENAI_API_KEY": secret, "SA_LEAKCHECK_KAFKA_PASSWORD": secret}
    log = flink_run_client_log(tmp_path, env, mask=True)
    assert secret.encode() not in log
    assert b"OPENAI_API_KEY" not in log


SCRAM_ENV = "SA_LEAKCHECK_SCRAM_PASSWORD"
SECURE_JOB = Path(__file__).parent / "jobs" / "secure_copy_job.py"


@pytest.mark.cluster
def test_scram_password_is_resolved_on_the_workers_only(
    secure_kafka: LocalKafka, secure_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    """SASL_SSL on a standalone cluster, the password a ``${env:...}`` reference.

    The SCRAM password is in the JobManager's and TaskManagers' environment
    only (not the ``flink run`` client's): the Kafka clients there resolve the
    reference through Kafka's ``EnvVarConfigProvider``.  The job (source,
    exactly-once sink, audit sink) works, and the password is nowhere in the
    JobGraph, the REST API's views (``/jobs/<id>/plan``, ``/config``, ...),
    the cluster's logs, checkpoints, blobs and temp files, the client log, or
    the records.
    """
    tag = uuid.uuid4().hex[:10]
    name, password = f"leak-{tag}", f"pw'LEAKCHECK-{tag}"
    topics = {role: secure_topic_factory(f"leak-{role}") for role in ("in", "out", "audit")}
    admin = secure_kafka.admin_security
    secure_kafka.add_user(name, password)
    access = AgentAccess(
        f"User:{name}", (topics["in"],), (topics["out"], topics["audit"]), (name,), (name,)
    )
    apply_acls(secure_kafka.bootstrap, admin, bindings(access))
    security = secure_kafka.user_security(name, SecretRef("env", SCRAM_ENV))
    client_file = tmp_path / "client.properties"
    client_file.write_text("".join(f"{k}={v}\n" for k, v in security.to_properties().items()))
    values = [f"event-{i}-{tag}" for i in range(10)]
    produce(secure_kafka.bootstrap, topics["in"], [(None, v) for v in values], security=admin)
    started_wall = time.time()
    cluster = ChaosCluster(tmp_path / "flink", extra_env={SCRAM_ENV: password})
    graph_dir = tmp_path / "graph"
    args = [
        *("--bootstrap", secure_kafka.bootstrap, "--security", str(client_file)),
        *("--in", topics["in"], "--out", topics["out"], "--audit", topics["audit"]),
        *("--group", name, "--txn-prefix", name, "--graph-dir", str(graph_dir)),
        *("--checkpoint-dir", str(cluster.checkpoint_dir)),
    ]
    secrets = {
        "scram password": password,
        "admin password": secure_kafka.admin_secret.resolve(),
        "broker keystore password": (secure_kafka.workdir / "tls" / "store.secret").read_text(),
    }
    probes = {"reference": f"${{env:{SCRAM_ENV}}}", "masked jaas": "sasl.jaas.config = [hidden]"}
    hits: list[Hit] = []
    cluster.up()
    try:
        job_id = cluster.submit_py(SECURE_JOB, args)
        hits += find_bytes("client log of `flink run`", client_logs(cluster), secrets)
        out = consume_committed(
            secure_kafka.bootstrap,
            topics["out"],
            expected=len(values),
            security=admin,
            timeout_s=120,
        )
        cluster.wait_job(job_id, {"FINISHED"}, timeout_s=120)
        rest_views = rest_snapshot(cluster, job_id)
    finally:
        cluster.down()
    assert sorted(m.value().decode() for m in out) == sorted(v.upper() for v in values)
    audit = read_topic_as(secure_kafka, topics["audit"])
    assert len(audit) == len(values)
    file_hits, scanned = find_files([cluster.run_dir, graph_dir], {**secrets, **probes})
    tmp_hits, _ = find_files([Path(tempfile.gettempdir())], secrets, started_wall)
    hits += file_hits + tmp_hits
    for path, body in rest_views.items():
        hits += find_bytes(f"REST {path}", body, secrets)
    for msg in out + audit:
        hits += find_bytes("topic record", record_bytes(msg), secrets)
    leaks = sorted({(h.name, h.where) for h in hits if h.name in secrets})
    assert not leaks, f"secrets found (name, where): {leaks}"
    found = {(h.name, h.where) for h in hits}
    assert any(n == "reference" and w.endswith("jobgraph.bin") for n, w in found), found
    assert any(n == "masked jaas" and "taskexecutor" in w for n, w in found), found
    assert f"/jobs/{job_id}/plan" in rest_views
    print(f"searched {scanned} files and {len(rest_views)} REST views")


def read_topic_as(broker: LocalKafka, topic: str) -> list[Any]:
    return consume_committed(broker.bootstrap, topic, security=broker.admin_security, idle_s=3)
