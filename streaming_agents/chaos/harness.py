"""The chaos harness: the agent job on a real cluster, killed in every way we can.

One run (:func:`run_chaos`) starts its own Kafka broker, fake LLM (faults
on) and standalone Flink cluster under ``plan.run_dir``, submits
``jobs/chaos/job.py`` with ``flink run -py``, produces events at a fixed rate
and, at random moments, injects the plan's faults one after the other:

* ``tm``: ``kill -9`` of the TaskManager (and its Python workers), a new
  TaskManager started at once; Flink restores the last checkpoint;
* ``jm``: ``kill -9`` of the JobManager; without HA the job is gone, so the
  harness restarts the cluster and resubmits the job from the newest retained
  checkpoint (``flink run -s <chk dir>``), as an operator would;
* ``broker``: a Kafka broker restart (``LocalKafka.restart()``).

``plan.secure`` runs it all on the secured broker (SASL_SSL, SCRAM, ACLs),
the job as its own least-privilege principal, the harness's clients as the
admin (:mod:`streaming_agents.chaos.identity`); the broker restarts on the
same ports with its users and ACLs (kept in its KRaft metadata), and the
run's files are searched for the passwords too.

Each fault waits for the first output committed after it (its recovery
time) before the next one.  Then production stops, the harness waits for
every input's output, lingers so duplicates would show, and returns the
figures (:class:`ChaosResult`); :mod:`streaming_agents.chaos.report` judges them.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streaming_agents.chaos.cluster import ChaosCluster, HostsCluster
from streaming_agents.chaos.identity import (
    JAAS_PROBE,
    ChaosIdentity,
    chaos_access,
    create_identity,
    secret_holders,
    secret_needles,
    security_file,
)
from streaming_agents.chaos.plan import ChaosPlan, ChaosResult
from streaming_agents.chaos.report import FaultRecord
from streaming_agents.chaos.secrets import find_files
from streaming_agents.chaos.traffic import EventProducer, OutputCollector, Received
from streaming_agents.connectors.security import KAFKA_SECURITY_ENV
from streaming_agents.runtime.environment import repo_root
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import LocalKafka, consume_committed, create_topics, end_offsets

__all__ = ["JOB", "run_chaos"]

JOB = repo_root() / "jobs" / "chaos" / "job.py"
API_KEY_ENV = "FAKE_LLM_API_KEY"


class _Run:
    """The live parts of one run (separate from :func:`run_chaos` for teardown)."""

    def __init__(self, plan: ChaosPlan, log: Callable[[str], None]) -> None:
        self.plan, self.log = plan, log
        self.rng = random.Random(plan.seed)
        self.result = ChaosResult(plan=plan)
        self.t0 = time.monotonic()
        shutil.rmtree(plan.run_dir, ignore_errors=True)
        plan.run_dir.mkdir(parents=True)
        self.kafka = LocalKafka(plan.run_dir / "kafka", secure=plan.secure)
        self.admin = self.kafka.admin_security  # the harness's clients (None: PLAINTEXT)
        self.identity: ChaosIdentity | None = None  # the job's principal, when secured
        self.llm = FakeLLM(plan.fake_llm_config())
        # A key unique to the run, so it can be searched for afterwards.
        self.api_key = f"sk-chaos-{uuid.uuid4().hex}"
        env = {API_KEY_ENV: self.api_key}
        if plan.secure:  # the Kafka journal on the workers reads the job's setting
            env[KAFKA_SECURITY_ENV] = str(security_file(plan.run_dir))
        self.host_dir = plan.run_dir / "host"
        self.cluster: ChaosCluster = (
            HostsCluster(plan.run_dir / "flink", self.host_dir, extra_env=env)
            if plan.hosts
            else ChaosCluster(plan.run_dir / "flink", extra_env=env)
        )
        self.parallelism = plan.parallelism
        self.extra_args: list[str] = []  # more job arguments (budget, audit topic)
        self.in_flight_at_kills: list[int] = []
        tag = uuid.uuid4().hex[:8]
        self.topics = {
            "in": f"chaos-in-{tag}",
            "out": f"chaos-out-{tag}",
            "dlq": f"chaos-dlq-{tag}",
        }
        self.tag = tag
        self.producer: EventProducer | None = None
        self.collector: OutputCollector | None = None
        self.job_id = ""

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        plan = self.plan
        with ThreadPoolExecutor(3) as pool:  # the three take 5-30 s each on 2 cores
            for started in [pool.submit(p.start) for p in (self.kafka, self.llm)] + [
                pool.submit(self.cluster.up)
            ]:
                started.result()
        self.log(f"[{self.now():6.1f}s] Kafka, fake LLM and Flink cluster up")
        bootstrap, admin = self.kafka.bootstrap, self.admin
        create_topics(bootstrap, [self.topics["in"]], partitions=2, security=admin)
        create_topics(
            bootstrap, [self.topics["out"], self.topics["dlq"]], partitions=1, security=admin
        )
        if plan.secure:
            self.identity = self.create_identity()
            self.result.principal = self.identity.principal
            self.log(f"[{self.now():6.1f}s] SASL_SSL: the job runs as {self.identity.principal}")
        self.collector = OutputCollector(bootstrap, self.topics["out"], security=admin)
        self.collector.start()
        self.producer = EventProducer(
            bootstrap, self.topics["in"], plan.keys, plan.rate, security=admin
        )
        self.producer.start()
        self.submit()
        self.log(f"[{self.now():6.1f}s] job {self.job_id} running; waiting for outputs")
        self.wait_until(lambda: self.outputs() > 0, plan.recovery_timeout_s, "first output")
        time.sleep(plan.warmup_s)

    def create_identity(self) -> ChaosIdentity:
        """The job's SCRAM user under exactly the ACLs its arguments need."""
        journal = [f"journal-{self.tag}"] if self.plan.journal == "kafka" else []
        access = chaos_access(f"User:chaos-{self.tag}", self.topics, f"chaos-{self.tag}",
                              f"chaos-{self.tag}", journal)  # fmt: skip
        return create_identity(self.kafka, self.plan.run_dir, access)

    def journal_uri(self) -> str:
        """The Kafka journal (one topic per run), or a SQLite file (per host on ``hosts``)."""
        if self.plan.journal == "kafka":
            return f"kafka://{self.kafka.bootstrap}/journal-{self.tag}?partitions=8"
        if self.plan.hosts:
            return f"sqlite://{self.host_dir}/journal.sqlite"
        return str(self.plan.run_dir / "journal.sqlite")

    def job_args(self) -> list[str]:
        plan = self.plan
        return [
            *("--bootstrap", self.kafka.bootstrap, "--in", self.topics["in"]),
            *("--out", self.topics["out"], "--dlq", self.topics["dlq"]),
            *("--api-base", self.llm.base_url, "--api-key-env", API_KEY_ENV),
            *("--journal", self.journal_uri()),
            *("--txn-prefix", f"chaos-{self.tag}", "--group-id", f"chaos-{self.tag}"),
            *("--checkpoint-ms", str(plan.checkpoint_ms), "--parallelism", str(self.parallelism)),
            *("--timeout-s", str(plan.model_timeout_s), "--job-name", f"chaos-{self.tag}"),
            *self.extra_args,
            *(("--kafka-security", str(self.identity.security_file)) if self.identity else ()),
        ]

    def submit(self, checkpoint: Path | str | None = None) -> None:
        """Submit the job (restored from ``checkpoint``: a folder or a savepoint URI)."""
        savepoint = checkpoint.as_uri() if isinstance(checkpoint, Path) else checkpoint
        self.job_id = self.cluster.submit_py(JOB, self.job_args(), savepoint=savepoint)
        self.result.jobs.append(self.job_id)
        self.cluster.wait_job(self.job_id, {"RUNNING"}, timeout_s=120)

    def kill_taskmanagers(self) -> str:
        """One TaskManager (``hosts``: one of two hosts) killed, a new one started."""
        self.in_flight_at_kills.append(int(self.llm.stats()["in_flight"]))
        if isinstance(self.cluster, HostsCluster):
            pids = [self.cluster.kill_one_taskmanager()]
        else:
            pids = self.cluster.kill_taskmanager()
        return f"pids {pids}; {self.in_flight_at_kills[-1]} calls in flight"

    def outputs(self) -> int:
        assert self.collector is not None
        return self.collector.count()

    def wait_until(self, cond: Callable[[], bool], timeout_s: float, what: str) -> bool:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                self.result.errors.append(f"no {what} within {timeout_s:.0f} s")
                return False
            time.sleep(0.2)
        return True

    def inject(self, kind: str) -> FaultRecord:
        out = self.topics["out"]
        bootstrap = self.kafka.bootstrap
        started = time.monotonic()
        not_before, detail = 0.0, ""
        if kind == "tm":
            killed = self.kill_taskmanagers()
            offsets = end_offsets(bootstrap, out, security=self.admin)
            self.cluster.start_taskmanager()
            name, detail = "TaskManager kill -9", f"{killed}; new TaskManager started"
        elif kind == "jm":
            checkpoint_before = self.cluster.latest_checkpoint(self.job_id)
            pids = self.cluster.kill_jobmanager()
            offsets = end_offsets(bootstrap, out, security=self.admin)
            checkpoint = self.cluster.latest_checkpoint(self.job_id) or checkpoint_before
            if checkpoint is None:
                raise RuntimeError(f"no retained checkpoint of job {self.job_id}")
            # the restart kills the TaskManagers: what they have in flight is lost then
            self.in_flight_at_kills.append(int(self.llm.stats()["in_flight"]))
            down_s, up_s = self.cluster.restart()
            submitted = time.monotonic()
            self.submit(checkpoint)
            self.result.restored_from.append(str(checkpoint))
            name = "JobManager kill -9"
            detail = (
                f"pid {pids}; cluster restarted (down {down_s:.0f} s, REST up {up_s:.0f} s); "
                f"flink run -s .../{checkpoint.name} {time.monotonic() - submitted:.0f} s"
            )
        elif kind == "broker":
            assert self.producer is not None and self.collector is not None
            self.producer.pause()  # the harness's own clients reconnect afterwards
            self.collector.pause()
            offsets = end_offsets(bootstrap, out, security=self.admin)
            self.kafka.restart()
            not_before = time.monotonic()
            self.collector.resume()
            self.producer.resume()
            name, detail = "Kafka broker restart", f"down {not_before - started:.1f} s"
        else:
            raise ValueError(f"unknown fault {kind!r}")
        at = started - self.t0
        self.log(f"[{at:6.1f}s] {name}: {detail}")
        assert self.collector is not None
        collector = self.collector
        seen: list[float] = []

        def recovered() -> bool:
            when = collector.first_new(offsets, not_before)
            if when is not None:
                seen.append(when)
            return when is not None

        self.wait_until(recovered, self.plan.recovery_timeout_s, f"output after {name}")
        recovery = seen[0] - started if seen else None
        self.log(f"[{self.now():6.1f}s]   recovered in {recovery or float('nan'):.1f} s")
        return FaultRecord(name, at, recovery, detail)

    def run_faults(self) -> None:
        for kind in self.plan.faults:
            time.sleep(self.rng.uniform(*self.plan.gap_s))
            self.result.faults.append(self.inject(kind))

    def drain(self) -> None:
        plan, producer, collector = self.plan, self.producer, self.collector
        assert producer is not None and collector is not None
        time.sleep(plan.tail_s)
        producer.stop()
        expected = set(producer.inputs())
        stopped = time.monotonic()
        self.log(f"[{self.now():6.1f}s] produced {len(expected)}; waiting for their outputs")
        self.wait_drained(expected)
        self.result.drain_s = time.monotonic() - stopped
        time.sleep(plan.linger_s)  # duplicates committed late would show up here
        collector.stop()
        self.result.inputs = sorted(expected)
        records = collector.records()
        self.result.outputs = [r.value for r in records]
        self.result.lag_s = _lags(producer.produced_at, records)
        self.result.errors += producer.errors[:5] + collector.errors[:5]
        dlq = consume_committed(self.kafka.bootstrap, self.topics["dlq"], timeout_s=20, idle_s=3,
                                security=self.admin)  # fmt: skip
        self.result.dead_letters = [json.loads(m.value()) for m in dlq]
        self.result.llm = self.llm.stats()
        with contextlib.suppress(Exception):
            counts = self.cluster.rest(f"/jobs/{self.job_id}/checkpoints")["counts"]
            self.result.checkpoints = dict(counts)
        self.scan()

    def scan(self) -> None:
        """Flink logs, checkpoints, the journal and the broker's data (every topic).

        Secured: the passwords too (not in the files meant to hold them), and the
        TaskManager logs must show the clients' configs masked (the probe).
        """
        needles = {"API key": self.api_key}
        holders: tuple[Path, ...] = ()
        if self.identity is not None:
            needles.update(secret_needles(self.kafka, self.identity), probe=JAAS_PROBE)
            holders = secret_holders(self.kafka, self.plan.run_dir)
        hits, self.result.files_scanned = find_files([self.plan.run_dir.resolve()], needles)
        hits = [h for h in hits if not any(Path(h.where).is_relative_to(p) for p in holders)]
        self.result.leaks = [f"{h.name} in {h.where}" for h in hits if h.name != "probe"]
        self.result.secrets_searched = [name for name in needles if name != "probe"]
        log_dir = self.cluster.log_dir
        probes = [h for h in hits if h.name == "probe" and Path(h.where).is_relative_to(log_dir)]
        self.result.jaas_probe_files = len(probes)
        if self.identity is not None and not probes:
            self.result.errors.append(f"probe {JAAS_PROBE!r} not in the cluster's logs")

    def wait_drained(self, expected: set[tuple[str, int]]) -> None:
        """Until every input has an output; gives up after ``stall_s`` without progress."""
        plan, collector = self.plan, self.collector
        assert collector is not None
        deadline = time.monotonic() + plan.drain_timeout_s
        count, progress, told = collector.count(), time.monotonic(), time.monotonic()
        while not expected <= collector.distinct():
            now = time.monotonic()
            if collector.count() > count:
                count, progress = collector.count(), now
            if now - progress > plan.stall_s or now > deadline:
                missing = len(expected - collector.distinct())
                why = "no new output" if now < deadline else "drain timeout"
                self.result.errors.append(f"{why} after {now - progress:.0f} s; {missing} missing")
                return
            if now - told > 30:
                told = now
                missing = len(expected - collector.distinct())
                self.log(f"[{self.now():6.1f}s]   {missing} inputs still without output")
            time.sleep(0.5)

    def close(self) -> None:
        for part in (self.producer, self.collector):
            if part is not None and part.is_alive():
                with contextlib.suppress(Exception):
                    part.stop()
        for stop in (self.cluster.down, self.llm.stop, self.kafka.stop):
            with contextlib.suppress(Exception):
                stop()


def _lags(produced_at: dict[tuple[str, int], float], records: list[Received]) -> dict[str, float]:
    """Seconds from producing an input to seeing its committed output: p50, p95, max."""
    lags = sorted(
        r.seen_at - produced_at[key]
        for r in records
        if (key := (r.value["key"], int(r.value["input"]["seq"]))) in produced_at
    )
    if not lags:
        return {}
    return {
        "p50": lags[len(lags) // 2],
        "p95": lags[int(len(lags) * 0.95)],
        "max": lags[-1],
    }


def run_chaos(plan: ChaosPlan, log: Callable[[str], None] = print) -> ChaosResult:
    """Run the plan end to end; never raises for a failed guarantee (see ``result.errors``)."""
    run = _Run(plan, log)
    try:
        run.start()
        run.run_faults()
        run.drain()
    except Exception as exc:  # noqa: BLE001 - reported as a failed run, with what was seen
        run.result.errors.append(f"{type(exc).__name__}: {str(exc)[:500]}")
        if run.collector is not None:
            run.result.outputs = [r.value for r in run.collector.records()]
        if run.producer is not None:
            run.result.inputs = sorted(set(run.producer.inputs()))
        with contextlib.suppress(Exception):
            run.result.llm = run.llm.stats()
    finally:
        run.result.duration_s = run.now()
        run.result.in_flight_at_kills = list(run.in_flight_at_kills)
        run.close()
    return run.result
