"""The Kafka journal (and its budget ledger) over SASL_SSL, as the agent's own principal.

A worker resolves ``kafka://bootstrap/topic`` with its own settings: here its
``$STREAMING_AGENTS_KAFKA_SECURITY`` names the agent's client-security file
(password with ``'`` and ``"``, referenced from a 0600 secret file, never in
the file itself), whose references are resolved on the worker.  The agent's
ACLs are exactly those :func:`access_for_agent` derives for a Kafka journal
(``READ``/``WRITE``/``CREATE`` on ``J``, ``J.requests`` and ``J.budget``,
``READ`` on the journal readers' group):
the journal creates its topics, writes a result and a request row, and a
fresh journal (a restarted worker) finds the result; the budget ledger
reserves beside it.  Another agent's principal, without those ACLs, is
refused with one clear error and reads nothing.  The journal's records hold
no password.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from streaming_agents import LLMResult
from streaming_agents.connectors.acls import access_for_agent
from streaming_agents.connectors.security import KAFKA_SECURITY_ENV, write_security_file
from streaming_agents.errors import InfrastructureError
from streaming_agents.journal.factory import ledger_uri, open_journal, open_ledger
from streaming_agents.journal.ledger import BudgetLimits
from streaming_agents.registry import load_job
from streaming_agents.testing.kafka import LocalKafka, consume_committed

DIGEST = "d" * 64


def test_kafka_journal_over_sasl_ssl_as_the_agents_principal(
    secure_kafka: LocalKafka,
    secure_topic_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = uuid.uuid4().hex[:8]
    spec = load_job("claims_triage").spec
    topics = {role: secure_topic_factory(f"sec-jr-{role}") for role in spec.topics}
    journal_topic = f"sec-journal-{tag}"
    access = access_for_agent(
        spec,
        "claims-triage",
        principal=f"User:journal-{tag}",
        topics=topics,
        journal_topics=[journal_topic],
    )
    assert {journal_topic, f"{journal_topic}.requests", f"{journal_topic}.budget"} <= set(
        access.create_topics
    )
    password = f"j'o\"urnal-{tag}"
    security = secure_kafka.add_agent(access, password, tmp_path / "secrets")
    client_file = write_security_file(tmp_path / "agent.properties", security)
    monkeypatch.setenv(KAFKA_SECURITY_ENV, str(client_file))
    uri = f"kafka://{secure_kafka.bootstrap}/{journal_topic}?partitions=2"

    started = time.monotonic()
    result = LLMResult(content='{"route": "fast"}', model="m", prompt_tokens=3)
    journal = open_journal(uri, agent="claims-triage", version="1", job="sec")
    try:
        asyncio.run(journal.append("policy-1", DIGEST, result))  # type: ignore[attr-defined]
        journal.record_request(  # type: ignore[attr-defined]
            kind="llm", agent="claims-triage", version="1", key="policy-1", turn=1,
            digest=DIGEST, body="{}",
        )  # fmt: skip
    finally:
        journal.close()
    restarted = open_journal(uri, agent="claims-triage", version="1", job="sec")
    try:
        found = asyncio.run(restarted.lookup("policy-1", DIGEST))  # type: ignore[attr-defined]
    finally:
        restarted.close()
    assert found is not None and found.content == result.content
    print(f"journal written and read back: {time.monotonic() - started:.1f}s")

    # The budget ledger beside it (journal.budget), same setting, same principal.
    ledger = open_ledger(ledger_uri(uri, None), agent="claims-triage", window_s=60)
    limits = BudgetLimits(max_tokens=100, max_cost_usd=None)

    async def spend() -> None:
        reservation = await ledger.reserve("claims-triage", 1, limits, 10, 0.0)
        assert reservation is not None
        await ledger.settle(reservation, 8, 0.0)

    try:
        asyncio.run(spend())
    finally:
        ledger.close()

    print(f"ledger: {time.monotonic() - started:.1f}s")
    admin = secure_kafka.admin_security
    records = [
        *consume_committed(secure_kafka.bootstrap, journal_topic, expected=1, security=admin),
        *consume_committed(
            secure_kafka.bootstrap, f"{journal_topic}.requests", expected=1, security=admin
        ),
    ]
    assert len(records) == 2
    assert all(password.encode() not in (m.value() or b"") + (m.key() or b"") for m in records)

    # Another principal (its own topics only) cannot read or write this journal.
    # Same groups (the journal readers' included), none of the journal's topics.
    other = dataclasses.replace(
        access, principal=f"User:other-{tag}", read_topics=(), write_topics=(), create_topics=()
    )
    other_security = secure_kafka.add_agent(other, f"o'ther-{tag}", tmp_path / "secrets")
    monkeypatch.setenv(
        KAFKA_SECURITY_ENV, str(write_security_file(tmp_path / "other.properties", other_security))
    )
    print(f"records checked: {time.monotonic() - started:.1f}s")
    nosy = open_journal(uri, agent="claims-triage", version="1", job="sec")
    try:
        with pytest.raises(InfrastructureError, match=r"(?i)topic.authorization") as refused:
            asyncio.run(nosy.lookup("policy-1", DIGEST))  # type: ignore[attr-defined]
    finally:
        nosy.close()
    assert password not in str(refused.value)
    print(f"refused: {time.monotonic() - started:.1f}s")
