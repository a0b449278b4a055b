"""The cheap variant of the rescale proof: a Kafka journal read at another parallelism.

The full proof (``python -m streaming_agents.chaos.hosts --rescale``, about 5 min)
rescales a running job 1 -> 2 -> 1 through savepoints on two TaskManagers that
each see their own filesystem.  Here, on the mini-cluster: the echo agent runs
the same bounded input three times with one Kafka journal (same scope), at
parallelism 1, then 2, then 1.  The first run pays every call; the runs at the
other parallelisms have fresh state, so every key is taken over by a subtask
that never saw it, which must find each of its calls in the journal topic (a
partition per key hash, whatever the subtask): zero new LLM requests and the
same outputs.  Journal hits are counted from the runs' audit trails.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import cloudpickle
from agent_support import echo_agent, events

from streaming_agents import run_agent
from streaming_agents.connectors.kafka import kafka_source
from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.kafka import produce

KEYS, PER_KEY = 12, 4

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _run(bootstrap: str, src: str, uri: str, agent: Any, parallelism: int) -> list[dict[str, Any]]:
    """One bounded run; returns its outputs and audit entries (``_audit`` marks the latter)."""
    from pyflink.common import Types, WatermarkStrategy

    from streaming_agents import audit_log

    env = local_env(parallelism=parallelism, checkpoint_interval_ms=None)
    source = kafka_source(bootstrap, src, f"rescale-{parallelism}-{time.time_ns()}", bounded=True)
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
    keyed = stream.key_by(lambda s: json.loads(s)["k"], key_type=Types.STRING())
    out = run_agent(keyed, agent, capacity=50, journal=uri)
    audit = audit_log(out).map(lambda s: '{"_audit": ' + s + "}", output_type=Types.STRING())
    return [json.loads(line) for line in out.union(audit).execute_and_collect()]


def test_runs_at_other_parallelisms_are_answered_from_the_kafka_journal(
    fake_llm: FakeLLM, kafka_bootstrap: str, topic_factory
) -> None:
    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 5, "max_ms": 30}})
    src = topic_factory("in", partitions=2)
    # keyed records: a key's events in one partition, in order, whatever reads them
    produce(kafka_bootstrap, src, [(json.loads(e)["k"], e) for e in events(KEYS, PER_KEY)])
    uri = f"kafka://{kafka_bootstrap}/journal-rescale-{time.time_ns()}?partitions=8&scope=rescale"
    agent = echo_agent(fake_llm)
    total = KEYS * PER_KEY
    seen: dict[int, set[tuple[str, int, int, str]]] = {}
    for run, parallelism in enumerate((1, 2, 1)):
        before = int(fake_llm.stats()["requests_total"])
        rows = _run(kafka_bootstrap, src, uri, agent, parallelism)
        outputs = [r for r in rows if "_audit" not in r]
        calls = [r["_audit"] for r in rows if "_audit" in r and r["_audit"]["kind"] == "llm_call"]
        hits = sum(1 for c in calls if c["outcome"] == "journal")
        paid = int(fake_llm.stats()["requests_total"]) - before
        print(f"run {run} at p={parallelism}: {len(outputs)} outputs, {paid} LLM requests, "
              f"{hits} journal hits")  # fmt: skip
        assert len(outputs) == total and len(calls) == total
        seen[run] = {
            (o["key"], o["input"]["seq"], o["turn"], json.dumps(o["output"])) for o in outputs
        }
        if run == 0:
            assert paid == total and hits == 0
        else:
            assert paid == 0 and hits == total, "every call answered from the journal"
            assert seen[run] == seen[0], "the same answers, turns and memory"
