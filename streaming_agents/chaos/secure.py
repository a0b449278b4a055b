"""A short crash run over SASL_SSL: ``streaming-agents submit`` to a private cluster, TM killed.

``python -m streaming_agents.chaos.secure [--run-dir DIR] [--claims N] [--keep]``
(~2-3 min on 2 quiet cores; too long for ``make test``, so it is its own command):

1. a secured broker (``LocalKafka(secure=True)``: SASL_SSL, SCRAM, ACLs), the
   fake LLM (claims-triage rules) and a private standalone cluster
   (:class:`~streaming_agents.chaos.cluster.ChaosCluster`, free ports, its own
   run folder: never the shared 8081 one);
2. the claims-triage agent runs as its own principal, whose password holds
   ``'`` and ``"``, under exactly the ACLs the registry derives for it
   (:func:`~streaming_agents.connectors.acls.access_for_agent`, its Kafka
   journal included).  The client-security file references the password in a
   0600 secret file; the TaskManagers get the file's path in
   ``$STREAMING_AGENTS_KAFKA_SECURITY`` (for the Kafka journal) and the model
   key in their environment, nothing else;
3. ``streaming-agents submit claims_triage --kafka-security FILE --journal
   kafka://.../J`` (a new process) submits the job; half the claims are
   produced, the first decisions awaited, the TaskManager killed with
   ``kill -9`` and a new one started, then the other half produced;
4. the job is stopped with a savepoint (``flink stop``);
5. checks: every valid claim decided exactly once (read_committed), every
   invalid one dead-lettered once; the journal topic has records; the SCRAM,
   admin and keystore passwords and the API key are in none of the cluster's
   files (logs, checkpoints, the savepoint, blobs, temp), the submit output, the REST views of
   the job, or the records of the output, dead-letter and journal topics
   (probes: the scan sees the TaskManager log's Kafka client configs, which
   show ``sasl.jaas.config = [hidden]``, and a key of the savepoint's state).

Exit status 0 when every check holds; the figures and failed checks are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from streaming_agents.chaos.cluster import ChaosCluster
from streaming_agents.chaos.secrets import Hit, find_bytes, find_files
from streaming_agents.connectors.acls import access_for_agent
from streaming_agents.connectors.security import KAFKA_SECURITY_ENV, write_security_file
from streaming_agents.errors import InfrastructureError
from streaming_agents.registry import SampleRecord, load_job
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import LocalKafka, consume_committed, create_topics, produce

__all__ = ["SecureRun", "main", "run_secure_crash"]

API_KEY_ENV = "FAKE_LLM_API_KEY"
AGENT = "claims-triage"


class _PatientCluster(ChaosCluster):
    """The chaos cluster with a restart strategy that waits for the replacement TaskManager.

    The project's ``fixed-delay`` 3 x 2 s gives up before a new TaskManager
    registers on a loaded machine (seen at load ~35: ``NoResourceAvailable``
    three times, job FAILED); a crash test is about recovery, so 30 attempts.
    """

    def render_conf(self) -> Path:
        conf = super().render_conf()
        path = conf / "config.yaml"
        text = path.read_text()
        patient = re.sub(r"(fixed-delay:\n\s+attempts:) 3\b", r"\1 30", text)
        if patient == text:
            raise InfrastructureError("flink-conf/config.yaml: no fixed-delay attempts to raise")
        path.write_text(patient)
        return conf


@dataclass
class SecureRun:
    """What one run found."""

    claims: int = 0
    valid: int = 0
    decided: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    journal_records: int = 0
    recovery_s: float = 0.0
    total_s: float = 0.0
    files_scanned: int = 0
    leaks: list[tuple[str, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)


def _valid(records: list[SampleRecord]) -> set[str]:
    load_job("claims_triage")
    from claims_triage.job import Claim  # type: ignore[import-not-found]

    found = set()
    for record in records:
        try:
            found.add(Claim.model_validate_json(record.value).claim_id)
        except ValueError:
            continue
    return found


def _submit(argv: list[str], env: dict[str, str]) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", "submit", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=False,
    )
    output = done.stdout + done.stderr
    found = re.search(r"\b([0-9a-f]{32})\b", done.stdout)
    if done.returncode != 0 or not found:
        raise InfrastructureError(f"submit failed ({done.returncode}): {output[-3000:]}")
    return found.group(1), output


def _rest_views(cluster: ChaosCluster, job_id: str) -> dict[str, bytes]:
    views = {}
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/plan", f"/jobs/{job_id}/config",
                 "/jobmanager/config", "/jobmanager/environment"):  # fmt: skip
        try:
            views[path] = json.dumps(cluster.rest(path)).encode()
        except InfrastructureError:
            continue
    return views


class _Crash:
    """The live parts of one run and its steps (see the module doc)."""

    def __init__(self, run_dir: Path, result: SecureRun, log: Any) -> None:
        self.run_dir, self.result, self.log = run_dir, result, log
        self.tag = uuid.uuid4().hex[:8]
        self.spec = load_job("claims_triage").spec
        self.kafka = LocalKafka(run_dir / "kafka", secure=True)
        self.llm = FakeLLM()
        self.api_key = f"sk-LEAKCHECK-{self.tag}"
        self.password = f"cr'a\"sh-{self.tag}"
        self.cluster: ChaosCluster | None = None
        self.topics = {role: f"sec-crash-{role}-{self.tag}" for role in self.spec.topics}
        self.journal_topic = f"sec-crash-journal-{self.tag}"

    def start(self) -> ChaosCluster:
        """Broker, fake LLM, topics, the agent's principal under its derived ACLs, cluster."""
        assert self.spec.fake_rules is not None
        self.kafka.start()
        self.llm.start()
        self.llm.configure({"rules": self.spec.fake_rules()})
        bootstrap, admin = self.kafka.bootstrap, self.kafka.admin_security
        create_topics(bootstrap, list(self.topics.values()), partitions=2, security=admin)
        principal = f"User:triage-{self.tag}"
        access = access_for_agent(self.spec, AGENT, principal=principal, topics=self.topics,
                                  journal_topics=[self.journal_topic])  # fmt: skip
        security = self.kafka.add_agent(access, self.password, self.run_dir / "secrets")
        self.client_file = write_security_file(self.run_dir / "agent.properties", security)
        env = {API_KEY_ENV: self.api_key, KAFKA_SECURITY_ENV: str(self.client_file)}
        self.cluster = _PatientCluster(self.run_dir / "flink", extra_env=env)
        self.cluster.up()
        return self.cluster

    def submit(self, cluster: ChaosCluster) -> tuple[str, str]:
        """``streaming-agents submit`` as a new process; the job id and its output."""
        journal = f"kafka://{self.kafka.bootstrap}/{self.journal_topic}?partitions=2"
        argv = ["claims_triage", "--rest", cluster.rest_url, "--bootstrap", self.kafka.bootstrap,
                "--kafka-security", str(self.client_file), "--model", "openai/claims-triage-fake",
                "--api-base", self.llm.base_url, "--api-key-env", API_KEY_ENV,
                "--checkpoint-ms", "1000", "--journal", journal, "--parallelism", "1"]  # fmt: skip
        for role, name in self.topics.items():
            argv += ["--topic", f"{role}={name}"]
        job_id, output = _submit(argv, {})
        self.log(f"submitted {job_id} over SASL_SSL as User:triage-{self.tag}")
        cluster.wait_job(job_id, {"RUNNING"}, timeout_s=120)
        return job_id, output

    def crash(self, cluster: ChaosCluster, n_claims: int) -> tuple[list[Any], list[Any]]:
        """Half the claims, the first decision, ``kill -9`` of the TaskManager, the rest.

        Returns (decisions, dead letters), read as the admin (read_committed).
        """
        assert self.spec.sample is not None
        bootstrap, admin = self.kafka.bootstrap, self.kafka.admin_security
        sample = self.spec.sample(n_claims, 11)
        valid = _valid(sample)
        self.result.claims, self.result.valid = len(sample), len(valid)
        half = len(sample) // 2
        records = [(r.key, r.value) for r in sample]
        produce(bootstrap, self.topics["claims"], records[:half], security=admin)
        consume_committed(bootstrap, self.topics["decisions"], expected=1, security=admin,
                          timeout_s=180)  # fmt: skip
        killed_at = time.monotonic()
        cluster.kill_taskmanager()
        cluster.start_taskmanager()
        self.log("TaskManager killed with kill -9; a new one started")
        produce(bootstrap, self.topics["claims"], records[half:], security=admin)
        decisions = consume_committed(bootstrap, self.topics["decisions"], expected=len(valid),
                                      security=admin, timeout_s=240, linger_s=5)  # fmt: skip
        self.result.recovery_s = time.monotonic() - killed_at
        dead = consume_committed(bootstrap, self.topics["dlq"], security=admin, idle_s=3)
        ids = [json.loads(m.value())["output"]["claim_id"] for m in decisions]
        self.result.decided = Counter(ids)
        self.result.dead_letters = len(dead)
        self.result.check(set(self.result.decided) == valid, "every valid claim decided")
        self.result.check(all(c == 1 for c in self.result.decided.values()),
                          "each decision exactly once")  # fmt: skip
        self.result.check(len(dead) == len(sample) - len(valid), "each invalid claim once")
        return decisions, dead

    def secrets(self) -> dict[str, str]:
        return {
            "scram password": self.password,
            "admin password": self.kafka.admin_secret.resolve(),
            "keystore password": (self.kafka.workdir / "tls" / "store.secret").read_text(),
            "api key": self.api_key,
        }

    def scan(self, cluster: ChaosCluster, savepoint: Path, key: str, views: dict[str, bytes],
             records: dict[str, list[Any]]) -> list[Hit]:  # fmt: skip
        """Search the cluster's files (probes: TM log configs, a state key in the savepoint),
        the REST views, the submit output and every record for the secrets."""
        secrets = self.secrets()
        probes = {"masked jaas": "sasl.jaas.config = [hidden]", "state probe": key}
        file_hits, self.result.files_scanned = find_files([cluster.run_dir], {**secrets, **probes})
        in_savepoint = {h.name for h in file_hits if h.where.startswith(str(savepoint))}
        self.result.check("state probe" in in_savepoint, "probe: the scan sees the savepoint")
        self.result.check(any(h.name == "masked jaas" for h in file_hits),
                          "probe: the TaskManager log shows the clients' config")  # fmt: skip
        hits = file_hits
        for where, body in views.items():
            hits += find_bytes(where, body, secrets)
        for name, msgs in records.items():
            for msg in msgs:
                hits += find_bytes(f"topic {name}", (msg.key() or b"") + (msg.value() or b""),
                                   secrets)  # fmt: skip
        return [h for h in hits if h.name in secrets]

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.down()
        self.llm.stop()
        self.kafka.stop()


def run_secure_crash(run_dir: Path, n_claims: int = 24, log: Any = print) -> SecureRun:
    """One run (see the module doc); every process it starts is stopped before it returns."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    result, started = SecureRun(), time.monotonic()
    run = _Crash(run_dir, result, log)
    try:
        cluster = run.start()
        job_id, submit_output = run.submit(cluster)
        decisions, dead = run.crash(cluster, n_claims)
        journal = consume_committed(run.kafka.bootstrap, run.journal_topic,
                                    security=run.kafka.admin_security, idle_s=3)  # fmt: skip
        result.journal_records = len(journal)
        result.check(len(journal) > 0, "the Kafka journal was written over SASL_SSL")
        views = {f"REST {p}": b for p, b in _rest_views(cluster, job_id).items()}
        views["submit output"] = submit_output.encode()
        savepoint = Path(urlparse(cluster.stop_with_savepoint(job_id)).path)
        key = json.loads(decisions[0].value())["key"]  # a key held in the savepoint's state
        cluster.down()
        records = {"decisions": decisions, "dlq": dead, "journal": journal}
        leaks = run.scan(cluster, savepoint, key, views, records)
        result.leaks = sorted({(h.name, h.where) for h in leaks})
        result.check(not leaks, "no secret in files, output, REST views or records")
    finally:
        run.stop()
    result.total_s = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.chaos.secure",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=Path(".run") / "chaos-secure")
    parser.add_argument("--claims", type=int, default=24)
    args = parser.parse_args(argv)
    result = run_secure_crash(args.run_dir.resolve(), args.claims)
    duplicates = sum(c - 1 for c in result.decided.values())
    print(f"claims {result.claims} (valid {result.valid}), decided {len(result.decided)}, "
          f"duplicates {duplicates}, dead letters {result.dead_letters}, journal records "
          f"{result.journal_records}; TM kill to last decision {result.recovery_s:.1f}s; "
          f"{result.files_scanned} files scanned; run {result.total_s:.0f}s")  # fmt: skip
    for name, where in result.leaks:
        print(f"LEAK {name} in {where}")
    for failure in result.failures:
        print(f"FAILED: {failure}")
    print("OK" if not result.failures else "NOT OK")
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
