"""The chaos job's own Kafka identity on the secured broker (``ChaosPlan.secure``).

On ``LocalKafka(secure=True)`` (SASL_SSL, SCRAM-SHA-512, ACLs) the chaos job
runs as ``User:chaos-<run>``, a SCRAM user whose password holds ``'``, ``"``
and ``\\``, under the least ACLs its arguments call for (:func:`chaos_access`:
the rules of :func:`~streaming_agents.connectors.acls.access_for_agent`,
applied to the job's topics since the chaos job is not in the registry):
READ on its input and consumer group, WRITE on its output and dead-letter
topics, WRITE/DESCRIBE on its transactional-id prefix, IDEMPOTENT_WRITE, and
with a Kafka journal READ/WRITE/CREATE on the journal's topics plus READ on
the journal readers' group.  Nothing else: no READ on its own output.

The password lives in a 0600 secret file (``run_dir/secrets``); the job gets
``--kafka-security run_dir/agent.properties`` (references only), and the
TaskManagers ``$STREAMING_AGENTS_KAFKA_SECURITY`` naming the same file for
the Kafka journal.  The harness's own clients (traffic generator,
``read_committed`` collector, offset and dead-letter readers) use the admin's
setting.  :func:`secret_needles` lists what a run's file scan looks for and
:func:`secret_holders` the files that hold those secrets on purpose.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from streaming_agents.connectors.acls import JOURNAL_READER_GROUP, AgentAccess, journal_topic_names
from streaming_agents.connectors.security import jaas_quote, write_security_file
from streaming_agents.testing.kafka import LocalKafka

__all__ = [
    "JAAS_PROBE",
    "ChaosIdentity",
    "chaos_access",
    "create_identity",
    "secret_holders",
    "secret_needles",
    "security_file",
]

JAAS_PROBE = "sasl.jaas.config = [hidden]"
"""What a TaskManager log shows of its Kafka clients' configs: proves the scan sees them."""


@dataclass(frozen=True)
class ChaosIdentity:
    """The job's principal, its password (to search for) and its client-security file."""

    principal: str
    password: str
    security_file: Path


def security_file(run_dir: Path) -> Path:
    """The job's ``--kafka-security`` file (known before the broker is up)."""
    return run_dir / "agent.properties"


def chaos_access(
    principal: str,
    topics: Mapping[str, str],
    group: str,
    txn_prefix: str,
    journal_topics: Iterable[str] = (),
) -> AgentAccess:
    """What the chaos job needs: ``topics["in"]`` read; ``"out"`` and ``"dlq"`` written."""
    journal = journal_topic_names(journal_topics)
    return AgentAccess(
        principal=principal,
        read_topics=(topics["in"], *journal),
        write_topics=(topics["out"], topics["dlq"], *journal),
        groups=(group, *((JOURNAL_READER_GROUP,) if journal else ())),
        transactional_id_prefixes=(txn_prefix,),
        create_topics=tuple(journal),
    )


def create_identity(kafka: LocalKafka, run_dir: Path, access: AgentAccess) -> ChaosIdentity:
    """The SCRAM user of ``access.principal`` with exactly its ACLs; its setting file."""
    password = f"ch'a\"os\\{uuid.uuid4().hex}"
    setting = kafka.add_agent(access, password, run_dir / "secrets")
    path = write_security_file(security_file(run_dir), setting)
    return ChaosIdentity(access.principal, password, path)


def secret_needles(kafka: LocalKafka, identity: ChaosIdentity) -> dict[str, str]:
    """The passwords no file of the run may hold (raw and as the Java clients read it)."""
    return {
        "SCRAM password": identity.password,
        "SCRAM password (JAAS-escaped)": jaas_quote(identity.password)[1:-1],
        "admin password": kafka.admin_secret.resolve(),
        "keystore password": (kafka.workdir / "tls" / "store.secret").read_text().strip(),
    }


def secret_holders(kafka: LocalKafka, run_dir: Path) -> tuple[Path, ...]:
    """Files and folders that hold the secrets on purpose (0600 secret files, broker config)."""
    workdir = kafka.workdir
    return (
        run_dir.resolve() / "secrets",
        workdir / "admin.secret",
        workdir / "server.properties",
        workdir / "tls",
    )
