"""A real single-node Kafka broker (KRaft: broker + controller in one JVM) for tests.

It runs the Kafka 4.x jars pinned in ``streaming_agents/_jars/kafka.lock.json``
(``make jars``, else fetched once into the user cache: :mod:`streaming_agents.jars`);
no Docker needed.  Settings that matter for exactly-once tests: replication
factor 1 and ``transaction.state.log.min.isr=1`` so transactions work on one
node, ``group.initial.rebalance.delay.ms=0`` so fresh consumers start at once.
:meth:`LocalKafka.restart` keeps the data and the ports, so a "broker restart"
chaos test sees the same topics, committed offsets and open transactions.

``LocalKafka(workdir, secure=True)`` starts the broker secured instead: one
SASL_SSL client listener (TLS with a CA made by :mod:`.kafka_tls`,
SASL/SCRAM-SHA-512 users), the standard authorizer with ``User:admin`` as
the only superuser and no access without an ACL.  There is no PLAINTEXT
listener then: its anonymous principal would either be refused everything or
need rights that weaken the tests.  The controller listener is
SASL_PLAINTEXT/PLAIN (SCRAM cannot authenticate controller connections), on
127.0.0.1 only, with the admin as its one user.  The admin's password is
random, in ``workdir/admin.secret`` (0600); :attr:`LocalKafka.admin_security`
references it.  Agent users are added with :meth:`LocalKafka.add_user`.

CLI: ``python -m streaming_agents.testing.kafka up|down|status [--secure]`` (state in
``<repo>/.run/kafka``, or ``<repo>/.run/kafka-secure``).
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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from streaming_agents.connectors.acls import AgentAccess
from streaming_agents.connectors.broker import ensure_topics
from streaming_agents.connectors.security import (
    KafkaSecurity,
    SecretRef,
    librdkafka_config,
    write_secret_file,
)
from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import java_home, repo_root
from streaming_agents.testing.kafka_tls import broker_tls

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

# Replaces the listener lines of _SERVER_PROPERTIES for LocalKafka(secure=True).
_SECURE_LISTENERS = """\
listeners=SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{mport},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=SASL_SSL://127.0.0.1:{port},SSL://127.0.0.1:{mport}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
listener.name.ssl.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=\
org.apache.kafka.common.security.plain.PlainLoginModule required \
username="admin" password="{admin}" user_admin="{admin}";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required \
username="admin" password="{admin}";
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={storepass}
ssl.key.password={storepass}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
allow.everyone.if.no.acl.found=false
"""
_PLAIN_LISTENER_KEYS = (
    "listeners=",
    "advertised.listeners=",
    "inter.broker.listener.name=",
    "listener.security.protocol.map=",
)

ADMIN_USER = "admin"

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

    def __init__(self, workdir: Path, port: int | None = None, *, secure: bool = False) -> None:
        self.workdir = Path(workdir).resolve()
        self.secure = secure
        self.state_file = self.workdir / "state.json"
        self.log_path = self.workdir / "broker.log"
        self.data_dir = self.workdir / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        state = self._read_state()
        if state and bool(state.get("secure")) != secure:
            state = {}  # the other mode's data and ports: start afresh
        self._ports_from_state = port is None and "port" in state
        if port is None or port == state.get("port"):
            self.port: int = state.get("port") or free_port()
            self.controller_port: int = state.get("controller_port") or free_port(self.port)
        else:
            self.port, self.controller_port = port, free_port(port)
        self.mtls_port: int = int(state.get("mtls_port") or 0)
        """The mutual-TLS (``SSL``) listener of a secured broker, chosen when it starts."""

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
        state: dict[str, Any] = {"pid": pid, "port": self.port}
        state.update(controller_port=self.controller_port, secure=self.secure)
        if self.secure:
            state["mtls_port"] = self.mtls_port
        self.state_file.write_text(json.dumps(state))

    def _classpath(self) -> str:
        from streaming_agents.jars import broker_jars  # verified; fetched once if missing

        return os.pathsep.join(str(jar) for jar in broker_jars())

    def _write_config(self) -> Path:
        path = self.workdir / "server.properties"
        text = _SERVER_PROPERTIES.format(
            port=self.port, cport=self.controller_port, data=self.data_dir
        )
        if self.secure:
            kept = [ln for ln in text.splitlines() if not ln.startswith(_PLAIN_LISTENER_KEYS)]
            tls = broker_tls(self.workdir / "tls")
            taken = (0, self.port, self.controller_port)
            while self.mtls_port in taken or not _port_free(self.mtls_port):
                self.mtls_port = free_port(self.port)
            secure = _SECURE_LISTENERS.format(
                port=self.port,
                mport=self.mtls_port,
                cport=self.controller_port,
                admin=self._admin_password(),
                keystore=tls.keystore,
                storepass=tls.store_password,
                ca=tls.ca_pem,
            )
            text = "\n".join(kept) + "\n" + secure
            path.touch(mode=0o600)
            path.chmod(0o600)  # holds the admin and keystore passwords
        path.write_text(text)
        (self.workdir / "log4j2.properties").write_text(_LOG4J)
        return path

    @property
    def admin_secret(self) -> SecretRef:
        """Reference to the admin password (``workdir/admin.secret``, mode 0600)."""
        return SecretRef("file", str(self.workdir / "admin.secret"), "password")

    def _admin_password(self) -> str:
        ref = self.admin_secret
        if not Path(ref.location).exists():
            write_secret_file(ref.location, uuid.uuid4().hex + uuid.uuid4().hex)
        return ref.resolve()

    @property
    def ca_pem(self) -> Path:
        """The CA certificate clients of the secured broker trust."""
        return self.workdir / "tls" / "ca.pem"

    def user_security(self, user: str, password: SecretRef) -> KafkaSecurity:
        """The client-security setting of ``user`` on this (secured) broker."""
        if not self.secure:
            raise InfrastructureError("user_security needs LocalKafka(secure=True)")
        return KafkaSecurity(
            protocol="SASL_SSL",
            mechanism="SCRAM-SHA-512",
            username=user,
            password=password,
            ca_location=str(self.ca_pem),
        )

    @property
    def mtls_bootstrap(self) -> str:
        """``host:port`` of the secured broker's mutual-TLS listener (after :meth:`start`)."""
        if not self.secure or not self.mtls_port:
            raise InfrastructureError("mtls_bootstrap needs a started LocalKafka(secure=True)")
        return f"127.0.0.1:{self.mtls_port}"

    def mtls_security(self, user: str) -> KafkaSecurity:
        """Mutual TLS as ``User:<user>``: a client certificate ``CN=<user>`` signed by the CA.

        For :attr:`mtls_bootstrap`; the keystore password is a reference to a
        0600 secret file.  ACLs for ``User:<user>`` are given as for SCRAM users.
        """
        from streaming_agents.testing.kafka_tls import client_keystore

        store, password = client_keystore(self.workdir / "tls", user)
        return KafkaSecurity(
            protocol="SSL",
            ca_location=str(self.ca_pem),
            keystore_location=str(store),
            keystore_password=password,
        )

    @property
    def admin_security(self) -> KafkaSecurity | None:
        """The superuser's setting on a secured broker; None (PLAINTEXT) otherwise."""
        return self.user_security(ADMIN_USER, self.admin_secret) if self.secure else None

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings for the admin (bootstrap included; holds the password)."""
        return {"bootstrap.servers": self.bootstrap, **librdkafka_config(self.admin_security)}

    def add_user(self, user: str, password: str) -> None:
        """Create or update SCRAM-SHA-512 user ``user`` (admin API; secured broker only)."""
        from streaming_agents.connectors.acls import upsert_scram_user

        if self.admin_security is None:
            raise InfrastructureError("add_user needs LocalKafka(secure=True)")
        upsert_scram_user(self.bootstrap, self.admin_security, user, password)

    def add_agent(self, access: AgentAccess, password: str, secret_dir: Path) -> KafkaSecurity:
        """A SCRAM user for ``access.principal`` with exactly ``access``'s ACLs.

        The password goes to ``secret_dir/<user>.secret`` (0600, see
        :func:`~streaming_agents.connectors.security.write_secret_file`); the
        returned setting references it.
        """
        from streaming_agents.connectors.acls import apply_acls, bindings

        user = access.principal.removeprefix("User:")
        self.add_user(user, password)
        apply_acls(self.bootstrap, self.admin_security, bindings(access))
        return self.user_security(user, write_secret_file(secret_dir / f"{user}.secret", password))

    def _java_cmd(self, main: str, *args: str) -> list[str]:
        log4j = f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"
        java = str(Path(java_home(), "bin", "java"))
        return [java, "-Xms128m", "-Xmx512m", log4j, "-cp", self._classpath(), main, *args]

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
            if self.secure:
                scram = f"SCRAM-SHA-512=[name={ADMIN_USER},password={self._admin_password()}]"
                cmd += ["--add-scram", scram]
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
            admin = admin or AdminClient(self.client_config())
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


def _conf(bootstrap: str, security: KafkaSecurity | None, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, **librdkafka_config(security), **extra}


def _watch_authentication(conf: dict[str, Any], refused: list[str]) -> dict[str, Any]:
    """Record authentication failures (librdkafka only logs them and retries forever)."""

    def on_error(err: Any) -> None:
        # A dropped connection during SASL is reported as _AUTHENTICATION too: not a refusal.
        if err.code() == KafkaError._AUTHENTICATION and "transport failure" not in err.str():
            refused.append(str(err))

    return {**conf, "error_cb": on_error} if "sasl.mechanism" in conf else conf


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    timeout_s: float = 30.0,
    *,
    security: KafkaSecurity | None = None,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create topics (existing ones are fine) and wait until every partition has a leader."""
    ensure_topics(_conf(bootstrap, security), names, partitions, config=config, timeout_s=timeout_s)


Headers = Sequence[tuple[str, str | bytes | None]]
"""Record headers: ``(name, value)`` pairs (a value may be None)."""


def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[
        tuple[bytes | str | None, bytes | str | None]
        | tuple[bytes | str | None, bytes | str | None, Headers | None]
    ],
    timeout_s: float = 30.0,
    *,
    security: KafkaSecurity | None = None,
    conf: Mapping[str, Any] | None = None,
) -> None:
    """Write ``(key, value[, headers])`` records (idempotent, acks=all); wait for every ack.

    A ``None`` value is a tombstone.  ``conf``: extra producer settings, e.g.
    ``{"message.max.bytes": ...}`` for records above the default 1 MB.
    """
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    refused: list[str] = []
    settings = _conf(bootstrap, security, **{"enable.idempotence": True, **(conf or {})})
    producer = Producer(_watch_authentication(settings, refused))
    for record in records:
        key, value = record[0], record[1]
        headers = list(record[2] or ()) if len(record) > 2 else []  # type: ignore[misc]
        producer.produce(
            topic, value=value, key=key, headers=headers or None, on_delivery=on_delivery
        )
        producer.poll(0)
    deadline = time.monotonic() + timeout_s
    while producer.flush(min(0.5, max(deadline - time.monotonic(), 0))) > 0:
        if refused:
            raise InfrastructureError(f"produce to {topic} refused: {refused[0]}")
        if time.monotonic() >= deadline:
            errors.append("records still unacknowledged after flush")
            break
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
    security: KafkaSecurity | None = None,
    group_id: str | None = None,
) -> list[Any]:
    """Read ``topic`` from the start as a ``read_committed`` consumer in a fresh group.

    Only records of committed transactions (and non-transactional ones) are
    returned -- what a downstream system sees of an exactly-once job.  Stops
    once ``expected`` records arrived (then keeps reading ``linger_s`` more so
    duplicates show up), or when ``expected`` is None after ``idle_s`` without
    records, or at ``timeout_s``.  Returns ``confluent_kafka.Message`` objects.
    ``security`` and ``group_id`` read as a given principal in a given group.
    """
    refused: list[str] = []
    conf = _conf(
        bootstrap,
        security,
        **{
            "group.id": group_id or f"sa-verify-{uuid.uuid4().hex[:12]}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        },
    )
    consumer = Consumer(_watch_authentication(conf, refused))
    out: list[Any] = []
    assigned: list[float] = []  # when partitions were assigned: idle time counts from then
    try:
        consumer.subscribe([topic], on_assign=lambda *_: assigned.append(time.monotonic()))
        deadline = time.monotonic() + timeout_s
        last_seen = 0.0
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if refused:
                raise InfrastructureError(f"consume from {topic} refused: {refused[0]}")
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


def end_offsets(
    bootstrap: str, topic: str, *, security: KafkaSecurity | None = None
) -> dict[int, int]:
    """High watermark per partition.  Transaction markers take offsets too, so for a
    transactionally written topic the sum exceeds the number of readable records."""
    consumer = Consumer(_conf(bootstrap, security, **{"group.id": "sa-offsets"}))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in parts}
    finally:
        consumer.close()
    return {p: int(high) for p, (_low, high) in marks.items()}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.testing.kafka")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--secure", action="store_true", help="SASL_SSL, SCRAM users, ACLs")
    args = parser.parse_args(argv)
    workdir = args.workdir or repo_root() / ".run" / ("kafka-secure" if args.secure else "kafka")
    broker = LocalKafka(workdir, args.port, secure=args.secure)
    if args.command == "up":
        if not broker.is_running():
            started = time.monotonic()
            broker.start()
            print(f"# broker up in {time.monotonic() - started:.1f}s", file=sys.stderr)
        print(f"KAFKA_BOOTSTRAP={broker.bootstrap}")
        if broker.admin_security is not None:
            path = broker.workdir / "admin.properties"
            props = broker.admin_security.to_properties()
            path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
            print(f"KAFKA_SECURITY={path}  # the admin's setting (references its secret file)")
            if broker.mtls_port:
                print(f"KAFKA_MTLS_BOOTSTRAP={broker.mtls_bootstrap}  # client certificates")
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
