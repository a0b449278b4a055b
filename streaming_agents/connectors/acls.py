"""Per-agent Kafka identity: the ACLs an agent needs, derived from what it declares.

An agent runs as its own principal (``User:<name>`` by default, a SCRAM user
on the broker).  :func:`access_for_agent` reads the agent's declaration in a
job's :class:`~streaming_agents.registry.JobSpec` and :func:`bindings` turns
the result into the least set of ACLs that lets it work:

* ``READ`` on each input topic and ``READ`` on its consumer group (Kafka
  treats READ as implying DESCRIBE, which the Flink source's offset lookups need);
* ``WRITE`` on each output topic -- outputs include dead letters in the
  registry -- and on any audit topic;
* a Kafka journal ``J`` (``kafka://.../J``) is three topics the agent both
  writes and reads back after a restore: ``J``, its request log
  ``J.requests`` and its budget ledger ``J.budget``: ``READ``, ``WRITE`` and
  ``CREATE`` (literal: the journal creates a missing topic itself) on each,
  and ``READ`` on the group its readers name (``streaming-agents-journal-reader``:
  they are assigned partitions and commit nothing, but librdkafka looks up
  the coordinator of a consumer's group all the same);
* ``WRITE`` and ``DESCRIBE`` on transactional ids starting with its prefix
  (``PREFIXED`` pattern: Flink's exactly-once sink appends subtask and
  checkpoint numbers) and ``IDEMPOTENT_WRITE`` on the cluster.

Nothing else: another agent's topics, groups and transactional ids stay out
of reach, which the broker enforces (``allow.everyone.if.no.acl.found=false``).
:func:`apply_acls` creates them with the admin client; :func:`upsert_scram_user`
creates the principal's SCRAM-SHA-512 credential.

CLI: ``python -m streaming_agents.connectors.acls JOB [--agent NAME]
[--topic role=name] [--bootstrap HOST:PORT --security ADMIN.properties --apply]``
prints each agent's ACLs and, with ``--apply``, creates them as the admin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from streaming_agents.connectors.security import KafkaSecurity, librdkafka_config, load_security
from streaming_agents.errors import ConfigError, InfrastructureError, UserError

if TYPE_CHECKING:
    from streaming_agents.registry import JobSpec

__all__ = [
    "AgentAccess",
    "access_for_agent",
    "access_for_job",
    "apply_acls",
    "bindings",
    "describe_acls",
    "journal_topic_names",
    "upsert_scram_user",
]

SCRAM_ITERATIONS = 8192
JOURNAL_READER_GROUP = "streaming-agents-journal-reader"
"""The ``group.id`` of the journal's and budget ledger's readers (``journal.kafka_io``)."""


@dataclass(frozen=True)
class AgentAccess:
    """What one principal may do: topics it reads and writes, its group and txn prefixes."""

    principal: str
    read_topics: tuple[str, ...]
    write_topics: tuple[str, ...]
    groups: tuple[str, ...]
    transactional_id_prefixes: tuple[str, ...]
    create_topics: tuple[str, ...] = ()
    """Topics it may create (literal names: its Kafka journal's)."""

    def __post_init__(self) -> None:
        kind, _, name = self.principal.partition(":")
        if kind != "User" or not name:
            raise ConfigError(f"principal {self.principal!r} must look like User:<name>")
        for what in (self.read_topics, self.write_topics, self.groups, self.create_topics):
            if any(not name for name in what):
                raise ConfigError(f"empty topic or group name for {self.principal}")
        if any(not prefix for prefix in self.transactional_id_prefixes):
            raise ConfigError("an empty transactional-id prefix would match every id")

    def describe(self) -> dict[str, list[str]]:
        """A plain mapping for listings (``streaming-agents agents``)."""
        return {
            "read": list(self.read_topics),
            "write": list(self.write_topics),
            "groups": list(self.groups),
            "transactional_id_prefixes": list(self.transactional_id_prefixes),
            "create": list(self.create_topics),
        }


def access_for_agent(
    job: JobSpec,
    agent: str,
    *,
    principal: str | None = None,
    topics: Mapping[str, str] | None = None,
    group: str | None = None,
    transactional_id_prefixes: Sequence[str] | None = None,
    audit_topics: Iterable[str] = (),
    journal_topics: Iterable[str] = (),
) -> AgentAccess:
    """The access ``agent`` of ``job`` needs, from its declared input and output roles.

    ``topics`` are role overrides (as ``run --topic role=name``).  The group
    and the transactional-id prefix default to the agent's name, which is what
    the shipped jobs use (``group_id or "<agent>"``, sinks' prefixes
    ``"<agent>-<topic>"``).
    """
    decl = next((a for a in job.agents if a.name == agent), None)
    if decl is None:
        known = ", ".join(a.name for a in job.agents)
        raise ConfigError(f"job {job.name!r} has no agent {agent!r}; its agents: {known}")
    resolved = job.resolve_topics(topics)
    journal = journal_topic_names(journal_topics)
    writes = [resolved[r] for r in decl.outputs] + list(audit_topics) + journal
    return AgentAccess(
        principal=principal or f"User:{agent}",
        read_topics=tuple(dict.fromkeys([*(resolved[r] for r in decl.inputs), *journal])),
        write_topics=tuple(dict.fromkeys(writes)),
        groups=(group or agent, *((JOURNAL_READER_GROUP,) if journal else ())),
        transactional_id_prefixes=tuple(transactional_id_prefixes or (agent,)),
        create_topics=tuple(journal),
    )


def journal_topic_names(journal_topics: Iterable[str]) -> list[str]:
    """The topics of Kafka journals ``J``: ``J``, ``J.requests`` and ``J.budget`` each."""
    return [name for j in journal_topics for name in (j, f"{j}.requests", f"{j}.budget")]


def access_for_job(job: JobSpec, topics: Mapping[str, str] | None = None) -> list[AgentAccess]:
    """:func:`access_for_agent` for every agent of ``job`` (defaults for group and prefix)."""
    return [access_for_agent(job, agent.name, topics=topics) for agent in job.agents]


def _allow(kind: Any, name: str, pattern: Any, principal: str, operation: Any) -> AclBinding:
    return AclBinding(kind, name, pattern, principal, "*", operation, AclPermissionType.ALLOW)


def bindings(access: AgentAccess) -> list[AclBinding]:
    """The ACLs of ``access`` (all ALLOW, any host)."""
    who, literal, prefixed = (
        access.principal,
        ResourcePatternType.LITERAL,
        ResourcePatternType.PREFIXED,
    )
    out = [
        _allow(ResourceType.TOPIC, t, literal, who, AclOperation.READ) for t in access.read_topics
    ]
    out += [_allow(ResourceType.GROUP, g, literal, who, AclOperation.READ) for g in access.groups]
    out += [
        _allow(ResourceType.TOPIC, t, literal, who, AclOperation.WRITE) for t in access.write_topics
    ]
    out += [
        _allow(ResourceType.TOPIC, t, literal, who, AclOperation.CREATE)
        for t in access.create_topics
    ]
    for prefix in access.transactional_id_prefixes:
        for operation in (AclOperation.WRITE, AclOperation.DESCRIBE):
            out.append(_allow(ResourceType.TRANSACTIONAL_ID, prefix, prefixed, who, operation))
    if access.write_topics:
        out.append(
            _allow(
                ResourceType.BROKER, "kafka-cluster", literal, who, AclOperation.IDEMPOTENT_WRITE
            )
        )
    return out


def _admin(bootstrap: str, admin_security: KafkaSecurity | None) -> Any:
    return AdminClient({"bootstrap.servers": bootstrap, **librdkafka_config(admin_security)})


def apply_acls(
    bootstrap: str,
    admin_security: KafkaSecurity | None,
    acls: Sequence[AclBinding],
    timeout_s: float = 30.0,
) -> None:
    """Create ``acls`` (existing ones are fine) as a principal allowed to alter ACLs."""
    if not acls:
        return
    admin = _admin(bootstrap, admin_security)  # kept alive until the futures complete
    futures = admin.create_acls(list(acls), request_timeout=timeout_s)
    failed = []
    for binding, future in futures.items():
        try:
            future.result(timeout_s)
        except KafkaException as exc:
            failed.append(f"{binding}: {exc.args[0].str()}")
    if failed:
        raise InfrastructureError(f"cannot create ACLs: {'; '.join(failed[:3])}")


def describe_acls(
    bootstrap: str, admin_security: KafkaSecurity | None, principal: str, timeout_s: float = 30.0
) -> list[AclBinding]:
    """Every ACL of ``principal`` on the cluster."""
    query: Any = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        principal,
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = _admin(bootstrap, admin_security)  # kept alive until the future completes
    future = admin.describe_acls(query, request_timeout=timeout_s)
    try:
        return list(future.result(timeout_s))
    except KafkaException as exc:
        raise InfrastructureError(f"cannot list ACLs of {principal}: {exc.args[0].str()}") from None


def upsert_scram_user(
    bootstrap: str,
    admin_security: KafkaSecurity | None,
    user: str,
    password: str,
    timeout_s: float = 30.0,
) -> None:
    """Create or replace ``user``'s SCRAM-SHA-512 credential (needs ALTER on the cluster)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(user, info, password.encode())
    admin = _admin(bootstrap, admin_security)
    futures = admin.alter_user_scram_credentials([upsert], request_timeout=timeout_s)
    try:
        futures[user].result(timeout_s)
    except KafkaException as exc:
        raise InfrastructureError(
            f"cannot set the SCRAM credential of {user}: {exc.args[0].str()}"
        ) from None


def _describe(binding: AclBinding) -> str:
    pattern = "prefixed" if binding.resource_pattern_type == ResourcePatternType.PREFIXED else ""
    restype = getattr(binding.restype, "name", str(binding.restype)).lower()
    kind = "cluster" if binding.restype == ResourceType.BROKER else restype
    what = f"{kind} {binding.name}" + (f" ({pattern})" if pattern else "")
    operation = getattr(binding.operation, "name", str(binding.operation))
    return f"{binding.principal}  {operation:<16} {what}"


def _main(argv: list[str] | None = None) -> int:
    try:
        return _run(argv)
    except (UserError, InfrastructureError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(argv: list[str] | None) -> int:
    from streaming_agents.registry import load_job

    parser = argparse.ArgumentParser(prog="python -m streaming_agents.connectors.acls")
    parser.add_argument("job", help="a job folder or name (as `streaming-agents run`)")
    parser.add_argument("--agent", help="only this agent")
    parser.add_argument("--principal", help="with --agent: its principal (default User:<agent>)")
    parser.add_argument("--group", help="with --agent: its consumer group (default: its name)")
    parser.add_argument("--txn-prefix", help="with --agent: its transactional-id prefix")
    parser.add_argument("--topic", action="append", default=[], metavar="ROLE=NAME")
    parser.add_argument("--bootstrap", help="broker to apply the ACLs to")
    parser.add_argument("--security", help="the admin's client-security properties file")
    parser.add_argument("--apply", action="store_true", help="create the ACLs (as the admin)")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.topic if "=" in item)
    job = load_job(args.job).spec
    if args.agent:
        prefixes = [args.txn_prefix] if args.txn_prefix else None
        accesses = [
            access_for_agent(
                job,
                args.agent,
                principal=args.principal,
                topics=overrides,
                group=args.group,
                transactional_id_prefixes=prefixes,
            )
        ]
    elif args.principal or args.group or args.txn_prefix:
        raise ConfigError("--principal, --group and --txn-prefix need --agent")
    else:
        accesses = access_for_job(job, overrides)
    if args.apply and not args.bootstrap:
        raise ConfigError("--apply needs --bootstrap (and --security for a secured broker)")
    admin = load_security(args.security) if args.security else None
    for access in accesses:
        acls = bindings(access)
        print("\n".join(_describe(b) for b in acls))
        if args.apply:
            apply_acls(args.bootstrap, admin, acls)
            print(f"# applied {len(acls)} ACLs for {access.principal}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
