"""``streaming-agents demo``: the claim-triage job end to end on this machine.

Steps: start a Kafka broker (KRaft, in a temporary folder) and, unless a real
model is asked for, the fake LLM scripted with keyword rules; create the
topics; write sample claims (a few malformed); run ``jobs/claims_triage`` on
the Flink mini-cluster with a bounded source and exactly-once sinks; read the
decisions and dead letters back as a ``read_committed`` consumer; print them
and a summary.  Everything started here is stopped on the way out, also after
an error, Ctrl-C or SIGTERM.

Progress goes to stderr, the decisions and the summary to stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from streaming_agents.agent import ModelSpec
from streaming_agents.cli.job_options import FAKE_KEY_ENV, MODEL_ENV, check_model_env, root_cause
from streaming_agents.cli.signals import interruptible, interrupts_ignored
from streaming_agents.errors import ConfigError, InfrastructureError

__all__ = ["FAKE_KEY_ENV", "MODEL_ENV", "ROUTES", "SEED", "fake_rules", "run_demo"]

SEED = 42
MAX_EVENTS = 10_000
ROUTES = ("auto_approve", "human_review", "request_more_info")
IN_TOPIC, OUT_TOPIC, DLQ_TOPIC = "claims", "claims-decisions", "claims-dlq"


def fake_rules() -> list[dict[str, Any]]:
    """Fake-LLM rules: the first regex found in the claim text picks the reply.

    Theft or cash in the description -> human_review (a higher fraud score
    above 10,000); no documents -> request_more_info; anything else ->
    auto_approve.  Replies are Decision JSON; ``claim_id`` is left empty
    because the job takes it from the claim, not from the model.
    """
    fraud = r"(?im)^Description:.*\b(stolen|cash)\b"
    big_fraud = r"(?im)^Amount: \d{5,}\.\d\d\nDescription:.*\b(stolen|cash)\b"

    def decision(route: str, score: float, *reasons: str) -> dict[str, Any]:
        return {"claim_id": "", "route": route, "fraud_score": score, "reasons": list(reasons)}

    return [
        {
            "match": big_fraud,
            "json": decision(
                "human_review",
                0.93,
                "theft or cash payment mentioned",
                "amount above 10,000",
            ),
        },
        {
            "match": fraud,
            "json": decision(
                "human_review",
                0.78,
                "theft or cash payment mentioned",
                "needs an adjuster before payment",
            ),
        },
        {
            "match": r"(?m)^Documents: none$",
            "json": decision(
                "request_more_info",
                0.12,
                "no documents attached",
                "need photos and an invoice or repair estimate",
            ),
        },
        {
            "match": r"^Claim ",
            "json": decision(
                "auto_approve",
                0.04,
                "covered event",
                "documents attached",
                "amount consistent with the description",
            ),
        },
    ]


def run_demo(events: int = 20, model: str | None = None, out: TextIO | None = None) -> int:
    """Run the demo; returns the exit code (0 when every record was accounted for)."""
    out = out or sys.stdout
    if not 1 <= events <= MAX_EVENTS:
        raise ConfigError(f"--events must be between 1 and {MAX_EVENTS}, got {events}")
    model_name = (model or os.environ.get(MODEL_ENV) or "fake").strip()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if model_name != "fake":
        check_model_env(model_name)
    # The Flink worker reads these; they must be set before PyFlink's JVM starts.
    os.environ.setdefault(FAKE_KEY_ENV, "sk-fake-demo-key")
    os.environ.setdefault("LITELLM_LOG", "WARNING")
    job = _load_job()
    records: list[dict[str, Any] | str] = job.generate_claims(events, SEED)

    started = time.monotonic()
    stack = contextlib.ExitStack()
    with interruptible():
        try:
            workdir = Path(tempfile.mkdtemp(prefix="sa-demo-"))
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            _progress(f"work folder {workdir}")
            # The broker takes longest to start: the JVM and the job graph are built meanwhile.
            broker = _BrokerStart(workdir / "kafka")
            stack.callback(broker.stop)
            spec = _model_spec(stack, model_name)
            env = _build_job(job, broker.bootstrap, spec, workdir)
            broker.wait()
            _write_claims(broker.bootstrap, records)
            job_s = _run_job(env)
            decisions, dead = _read_back(broker.bootstrap)
        finally:
            with interrupts_ignored():
                stack.close()
    _report(out, decisions, dead, len(records), job_s, time.monotonic() - started)
    return 0 if len(decisions) + len(dead) == len(records) else 1


# --------------------------------------------------------------------------- steps


def _load_job() -> ModuleType:
    """The ``claims_triage`` job package, from the jobs the registry finds (shipped in the
    wheel, or the checkout's ``jobs/``), imported by location as ``claims_triage``."""
    from streaming_agents.registry import load_job

    return load_job("claims_triage").module


class _BrokerStart:
    """Starts a LocalKafka broker (and the demo topics) in a background thread.

    ``LocalKafka.is_running`` reads ``/proc/PID/cmdline``, which a busy JVM
    now and then returns empty: the start may then report a live broker as
    "exited during start", and ``stop()`` may skip it.  So a failed start is
    retried once and ``stop`` checks the pid itself afterwards.
    """

    def __init__(self, workdir: Path) -> None:
        from streaming_agents.testing.kafka import LocalKafka

        self._broker = LocalKafka(workdir)
        self._pids: list[int] = []
        self.bootstrap: str = self._broker.bootstrap  # the port is chosen up front
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, name="kafka-start", daemon=True)
        self._t0 = time.monotonic()
        self._thread.start()

    def _start(self) -> None:
        from streaming_agents.testing.kafka import create_topics

        try:
            for attempt in (1, 2):
                try:
                    self._broker.start()
                    break
                except InfrastructureError:
                    self._remember_pid()
                    if attempt == 2:
                        raise
                    self._terminate()
                    _progress("kafka broker start failed; retrying once")
            self._remember_pid()
            create_topics(self.bootstrap, [IN_TOPIC, OUT_TOPIC, DLQ_TOPIC])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by wait()
            self._error = exc

    def _remember_pid(self) -> None:
        pid = self._broker.pid
        if pid is not None and pid not in self._pids:
            self._pids.append(pid)

    def wait(self) -> None:
        """Block until the broker answers and the topics exist; re-raise its failure."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        _progress(
            f"kafka broker {self.bootstrap} (pid {self._broker.pid}) up, topics created "
            f"{time.monotonic() - self._t0:.1f} s after start"
        )

    def stop(self) -> None:
        """Stop the broker, waiting for a start still under way first."""
        self._thread.join()
        self._remember_pid()
        if self._pids:
            self._terminate()
            _progress(f"kafka broker (pid {', '.join(map(str, self._pids))}) stopped")

    def _terminate(self) -> None:
        self._broker.stop()
        for pid in self._pids:  # in case stop() misread the broker as gone
            started, sig = time.monotonic(), signal.SIGTERM
            while _broker_alive(pid, self._broker.workdir) and time.monotonic() - started < 40:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if time.monotonic() - started > 30:
                    sig = signal.SIGKILL
                time.sleep(0.2)


def _broker_alive(pid: int, workdir: Path) -> bool:
    """Whether ``pid`` is a live (non-zombie) process of the broker in ``workdir``."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    # an empty cmdline is the transient misread: treat it as the broker
    return state != "Z" and (not cmdline or str(workdir).encode() in cmdline)


def _model_spec(stack: contextlib.ExitStack, model: str) -> ModelSpec:
    if model != "fake":
        _progress(f"model {model} (real LLM calls: they cost money)")
        return ModelSpec(model=model, timeout_s=60.0, num_retries=2)
    from streaming_agents.testing.fake_llm import FakeLLM

    fake = FakeLLM({"rules": fake_rules(), "latency_ms": 5})
    stack.callback(_stop_fake, fake)
    fake.start()
    _progress(f"fake LLM {fake.base_url} (scripted keyword rules)")
    return ModelSpec(
        model="openai/claims-triage-fake", api_base=fake.base_url, api_key_env=FAKE_KEY_ENV
    )


def _stop_fake(fake: Any) -> None:
    url = fake.base_url if fake.running else None
    fake.stop()
    if url:
        _progress(f"fake LLM {url} stopped")


def _write_claims(bootstrap: str, records: list[dict[str, Any] | str]) -> None:
    """Claims keyed by policy_id; malformed records as they are, without a key."""
    from confluent_kafka import Producer

    # librdkafka's own log goes to a quiet logger: against a fresh broker it warns
    # (e.g. "Coordinator load in progress") while it retries by itself.
    quiet = logging.getLogger("streaming_agents.demo.rdkafka")
    quiet.setLevel(logging.ERROR)
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "logger": quiet}
    )
    for record in records:
        if isinstance(record, dict):
            key: str | None = str(record["policy_id"])
            value = json.dumps(record)
        else:
            key, value = None, record
        producer.produce(IN_TOPIC, value=value, key=key, on_delivery=on_delivery)
        producer.poll(0)
    if producer.flush(30) > 0:
        errors.append("records still unacknowledged after 30 s")
    if errors:
        raise InfrastructureError(f"writing the claims to '{IN_TOPIC}' failed: {errors[:3]}")
    bad = sum(isinstance(r, str) for r in records)
    _progress(f"wrote {len(records)} claims to '{IN_TOPIC}' ({bad} malformed)")


def _build_job(job: ModuleType, bootstrap: str, spec: ModelSpec, workdir: Path) -> Any:
    """The mini-cluster environment with the claims-triage job added (starts PyFlink's JVM)."""
    from streaming_agents.runtime.environment import local_env

    t0 = time.monotonic()
    env = local_env(
        checkpoint_interval_ms=1000,
        extra_config={
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "2",
            "restart-strategy.fixed-delay.delay": "1 s",
        },
    )
    job.build(
        env,
        bootstrap,
        IN_TOPIC,
        OUT_TOPIC,
        DLQ_TOPIC,
        spec,
        bounded=True,
        group_id="claims-triage-demo",
        journal=f"sqlite://{(workdir / 'journal.sqlite').resolve()}",  # resolved on the worker
    )
    _progress(f"job graph built in {time.monotonic() - t0:.1f} s")
    return env


def _run_job(env: Any) -> float:
    _progress("running the claims-triage job on the Flink mini-cluster (bounded input)")
    t0 = time.monotonic()
    try:
        env.execute("claims-triage-demo")
    except Exception as exc:  # py4j wraps the Java failure; keep its root cause
        raise InfrastructureError(f"the Flink job failed: {root_cause(exc)}") from exc
    elapsed = time.monotonic() - t0
    _progress(f"job finished in {elapsed:.1f} s")
    return elapsed


def _read_back(bootstrap: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Decisions and dead letters, as a read_committed consumer sees them."""
    from streaming_agents.testing.kafka import consume_committed

    def read(topic: str) -> list[dict[str, Any]]:
        messages = consume_committed(bootstrap, topic, timeout_s=30, idle_s=1.0)
        return [json.loads(m.value()) for m in messages]

    with ThreadPoolExecutor(max_workers=2) as pool:
        decisions, dead = pool.map(read, [OUT_TOPIC, DLQ_TOPIC])
    return decisions, dead


# --------------------------------------------------------------------------- output


def _report(
    out: TextIO,
    decisions: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    total: int,
    job_s: float,
    total_s: float,
) -> None:
    def line(text: str = "") -> None:
        print(text, file=out, flush=True)

    line(f"decisions (read_committed from '{OUT_TOPIC}'):")
    line(f"  {'claim':<9} {'policy':<9} {'route':<18} {'fraud':<11} {'amount':>9}  reasons")
    routes: Counter[str] = Counter()
    for record in sorted(decisions, key=lambda r: str(r["output"].get("claim_id"))):
        decision, claim = record["output"], record["input"]
        routes[decision["route"]] += 1
        reasons = "; ".join(decision.get("reasons") or [])
        line(
            f"  {decision['claim_id']:<9} {claim.get('policy_id', '?'):<9} "
            f"{decision['route']:<18} fraud={float(decision['fraud_score']):.2f}  "
            f"{claim.get('amount', 0):>9.2f}  {reasons}"
        )
    line(f"dead letters (read_committed from '{DLQ_TOPIC}'):")
    for record in dead:
        payload = record.get("payload")
        text = payload if isinstance(payload, str) else json.dumps(payload)
        text = text if len(text) <= 70 else text[:67] + "..."
        error = str(record.get("error") or "").splitlines()[0:1]
        detail = f"  ({error[0][:70]})" if error else ""
        line(f"  dead-letter  {record.get('reason', '?'):<18} {text}{detail}")
    counts = " ".join(f"{route}={routes[route]}" for route in ROUTES)
    line(
        f"summary: {total} claims -> {counts} dead_lettered={len(dead)}"
        f" | job {job_s:.1f} s, total {total_s:.1f} s"
    )
    if len(decisions) + len(dead) != total:
        line(f"warning: {total - len(decisions) - len(dead)} claim(s) unaccounted for")


def _progress(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)
