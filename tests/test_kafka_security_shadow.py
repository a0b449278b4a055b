"""A live shadow run on the secured broker (the Python API; ``shadow --kafka-security``
builds the same call).

``shadow(..., security=)`` starts the claims triage agent beside production on a
claims topic over SASL_SSL as its own principal (password with ``'`` and ``"``):
its source, its exactly-once shadow sink and its audit sink all connect with the
setting, as do the readers that check the shadow topic first.  The principal's
ACLs are the agent's read/write topics, the shadow run's group and the
transactional-id prefixes of a shadow run (``sa-shadow-``, ``sa-audit-``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

from streaming_agents import ModelSpec
from streaming_agents.connectors.acls import AgentAccess
from streaming_agents.registry import load_job
from streaming_agents.replay import shadow
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import LocalKafka, consume_committed, produce

SAMPLE = 6


def test_live_shadow_over_sasl_ssl_as_its_own_principal(
    secure_kafka: LocalKafka,
    secure_topic_factory: Callable[..., str],
    fake_llm: FakeLLM,
    tmp_path: Path,
) -> None:
    entry = load_job("claims_triage")
    from claims_triage.job import triage_agent  # type: ignore[import-not-found]

    spec = entry.spec
    assert spec.fake_rules is not None and spec.sample is not None
    fake_llm.configure({"rules": spec.fake_rules()})
    tag = uuid.uuid4().hex[:8]
    claims, out, audit = (secure_topic_factory(f"sec-shadow-{r}") for r in ("in", "out", "audit"))
    group = f"shadow-{tag}"
    access = AgentAccess(
        f"User:shadow-{tag}", (claims,), (out, audit), (group,), ("sa-shadow-", "sa-audit-")
    )
    security = secure_kafka.add_agent(access, f"sh'a\"dow-{tag}", tmp_path / "secrets")
    admin = secure_kafka.admin_security
    sample = spec.sample(SAMPLE, 42)
    produce(secure_kafka.bootstrap, claims, [(r.key, r.value) for r in sample], security=admin)

    model = ModelSpec(
        model="openai/claims-triage-fake",
        api_base=fake_llm.base_url,
        api_key_env="FAKE_LLM_API_KEY",
    )
    run = shadow(
        triage_agent(model),
        bootstrap=secure_kafka.bootstrap,
        topic=claims,
        shadow_topic=out,
        key_field="policy_id",
        starting="earliest",
        group_id=group,
        audit_topic=audit,
        run_dir=tmp_path / "run",
        security=security,
    )
    try:
        got = consume_committed(
            secure_kafka.bootstrap, out, expected=SAMPLE, timeout_s=150, security=admin
        )
    finally:
        run.stop()
    docs = [json.loads(m.value()) for m in got]
    assert len(docs) == SAMPLE and all(d["shadow"] is True for d in docs)
    assert sum(1 for d in docs if d.get("dead_letter") is True) == 1
    trail = consume_committed(secure_kafka.bootstrap, audit, security=admin)
    assert trail and all(json.loads(r.value())["shadow"] is True for r in trail)
