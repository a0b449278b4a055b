"""A real single-node Kafka broker (KRaft: broker + controller in one JVM) for tests.

It runs the Kafka 4.x jars fetched by ``make jars`` into ``$SA_JARS_DIR/kafka``;
no Docker needed.  Settings that matter for exactly-once tests: replication
factor 1 and ``transaction.state.log.min.isr=1`` so transactions work on one
node, ``group.initial.rebalance.delay.ms=0`` so fresh consumers start at once.
:meth:`LocalKafka.restart` keeps the data and the ports, so a "broker restart"
chaos test sees the same topics, committed offsets and open transactions.

CLI: ``python -m streaming_agents.testing.kafka up|down|status`` (state in
``<repo>/.run/kafka``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import jars_dir, java_home, repo_root

__all__ = [
    "LocalKafka",
    "consume_committed",
    "create_topics",
    "end_offsets",
    "free_port",
    "produce",
]

# One node: replication factor 1 everywhere, and transactions need min.isr 1.
_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
transaction.max.timeout.ms=900000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""

_LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def free_port(avoid: int = 0) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (and is not ``avoid``)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != avoid:
            return port


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


class LocalKafka:
    """One KRaft broker+controller JVM whose data lives in ``workdir``.

    ``port`` is the client port (a free one when ``None``); ports are stored in
    ``workdir/state.json`` and reused by :meth:`restart` and later instances on
    the same ``workdir`` (data is kept unless the stored ports are taken).
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.state_file = self.workdir / "state.json"
        self.log_path = self.workdir / "broker.log"
        self.data_dir = self.workdir / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        state = self._read_state()
        self._ports_from_state = port is None and "port" in state
        if port is None or port == state.get("port"):
            self.port: int = state.get("port") or free_port()
            self.controller_port: int = state.get("controller_port") or free_port(self.port)
        else:
            self.port, self.controller_port = port, free_port(port)

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid, if one was started (by this object or the CLI)."""
        if self._proc is not None:
            return self._proc.pid
        pid = self._read_state().get("pid")
        return int(pid) if pid else None

    def is_running(self) -> bool:
        pid = self.pid
        if pid is None or not _pid_alive(pid):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists():
            return True
        # A busy JVM sometimes reads back an empty cmdline: alive, not a stranger.
        content = cmdline.read_bytes()
        return not content or str(self.workdir).encode() in content

    def _read_state(self) -> dict[str, Any]:
        exists = self.state_file.exists()
        return dict(json.loads(self.state_file.read_text())) if exists else {}

    def _write_state(self, pid: int | None) -> None:
        state = {"pid": pid, "port": self.port, "controller_port": self.controller_port}
        self.state_file.write_text(json.dumps(state))

    def _classpath(self) -> str:
        folder = jars_dir() / "kafka"
        if not any(folder.glob("kafka_*.jar")):
            raise InfrastructureError(f"no Kafka broker jars in {folder}: run `make jars`")
        return f"{folder}/*"

    def _write_config(self) -> Path:
        path = self.workdir / "server.properties"
        path.write_text(
            _SERVER_PROPERTIES.format(
                port=self.port, cport=self.controller_port, data=self.data_dir
            )
        )
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        return path

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        folder = jars_dir() / "kafka"
        if not any(folder.glob("kafka_*.jar")):
            raise InfrastructureError(f"no Kafka broker jars in {folder}: run `make jars`")
        log4j = f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"
        java = str(Path(java_home(), "bin", "java"))
        return [java, "-Xms128m", "-Xmx512m", log4j, "-cp", f"{folder}/*", main, *args]

    def start(self, timeout_s: float = 60.0) -> None:
        """Format storage if new, start the JVM (detached session), wait until it answers."""
        if self.is_running():
            raise InfrastructureError(f"a broker already runs from {self.workdir} (pid {self.pid})")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not (_port_free(self.port) and _port_free(self.controller_port)):
            if not self._ports_from_state:
                raise InfrastructureError(f"port {self.port} or {self.controller_port} is taken")
            self.port = free_port()
            self.controller_port = free_port(self.port)
        state = self._read_state()
        if (state.get("port"), state.get("controller_port")) != (self.port, self.controller_port):
            shutil.rmtree(self.data_dir, ignore_errors=True)  # data of other ports: start afresh
        self._ports_from_state = False
        config = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # like Kafka's Uuid.randomUuid()
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            cmd = self._java_cmd("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}")
            done = subprocess.run(
                [*cmd, "-c", str(config)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise InfrastructureError(f"kafka storage format failed: {done.stderr[-2000:]}")
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._write_state(self._proc.pid)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        admin: Any = None  # created once the port listens (saves librdkafka's refusal noise)
        while time.monotonic() < deadline:
            if not self.is_running():
                raise InfrastructureError(f"kafka broker exited during start:\n{self.log_tail()}")
            if admin is None and _port_free(self.port):
                time.sleep(0.2)
                continue
            admin = admin or AdminClient({"bootstrap.servers": self.bootstrap})
            try:
                admin.list_topics(timeout=2)
                return
            except KafkaException:
                time.sleep(0.3)
        self.stop()
        raise InfrastructureError(f"kafka broker not ready in {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no broker log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (clean shutdown, flushes the log), then SIGKILL after ``timeout_s``."""
        self._signal_and_wait(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, for chaos tests (data on disk survives, unflushed writes may not)."""
        self._signal_and_wait(signal.SIGKILL, 10.0)

    def _signal_and_wait(self, sig: signal.Signals, timeout_s: float) -> None:
        pid = self.pid
        if pid is None or not self.is_running():
            self._proc = None
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while not self._exited(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10.0
            time.sleep(0.1)
        self._proc = None
        self._write_state(None)

    def _exited(self, pid: int) -> bool:
        if self._proc is not None:  # our child: reap it
            return self._proc.poll() is not None
        return not _pid_alive(pid)

    def restart(self, timeout_s: float = 60.0) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        self.start(timeout_s)


def create_topics(
    bootstrap: str, names: Iterable[str], partitions: int = 1, timeout_s: float = 30.0
) -> None:
    """Create topics (existing ones are fine) and wait until every partition has a leader."""
    wanted = list(names)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in wanted])
    for name, fut in futures.items():
        try:
            fut.result(timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise InfrastructureError(f"cannot create topic {name}: {exc}") from exc
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=5).topics
        if all(
            n in meta
            and meta[n].error is None
            and meta[n].partitions
            and all(p.leader >= 0 for p in meta[n].partitions.values())
            for n in wanted
        ):
            return
        time.sleep(0.2)
    raise InfrastructureError(f"topics {wanted} not ready after {timeout_s:.0f}s")


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | str | None, bytes | str]],
    timeout_s: float = 30.0,
) -> None:
    """Write ``(key, value)`` records (idempotent producer, acks=all) and wait for every ack."""
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        producer.poll(0)
    if producer.flush(timeout_s) > 0:
        errors.append("records still unacknowledged after flush")
    if errors:
        raise InfrastructureError(f"produce to {topic} failed: {errors[:3]}")


def consume_committed(
    bootstrap: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout_s: float = 30.0,
    idle_s: float = 3.0,
    linger_s: float = 0.0,
) -> list[Any]:
    """Read ``topic`` from the start as a ``read_committed`` consumer in a fresh group.

    Only records of committed transactions (and non-transactional ones) are
    returned -- what a downstream system sees of an exactly-once job.  Stops
    once ``expected`` records arrived (then keeps reading ``linger_s`` more so
    duplicates show up), or when ``expected`` is None after ``idle_s`` without
    records, or at ``timeout_s``.  Returns ``confluent_kafka.Message`` objects.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"sa-verify-{uuid.uuid4().hex[:12]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    out: list[Any] = []
    assigned: list[float] = []  # when partitions were assigned: idle time counts from then
    try:
        consumer.subscribe([topic], on_assign=lambda *_: assigned.append(time.monotonic()))
        deadline = time.monotonic() + timeout_s
        last_seen = 0.0
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            now = time.monotonic()
            err = None if msg is None else msg.error()
            if msg is not None and err is None:
                out.append(msg)
                last_seen = now
            elif err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise InfrastructureError(f"consume from {topic} failed: {err}")
            if expected is not None and len(out) >= expected:
                deadline = min(deadline, now + linger_s)
            elif expected is None and assigned and now - max(last_seen, assigned[0]) >= idle_s:
                break
    finally:
        consumer.close()
    return out


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark per partition.  Transaction markers take offsets too, so for a
    transactionally written topic the sum exceeds the number of readable records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "sa-offsets"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in parts}
    finally:
        consumer.close()
    return {p: int(high) for p, (_low, high) in marks.items()}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.testing.kafka")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--workdir", type=Path, default=repo_root() / ".run" / "kafka")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    broker = LocalKafka(args.workdir, args.port)
    if args.command == "up":
        if not broker.is_running():
            started = time.monotonic()
            broker.start()
            print(f"# broker up in {time.monotonic() - started:.1f}s", file=sys.stderr)
        print(f"KAFKA_BOOTSTRAP={broker.bootstrap}")
        return 0
    if args.command == "down":
        broker.stop()
        print("kafka stopped")
        return 0
    if broker.is_running():
        print(f"running pid={broker.pid} KAFKA_BOOTSTRAP={broker.bootstrap}")
        return 0
    print("not running")
    return 1


if __name__ == "__main__":
    sys.exit(_main())
