"""The Kafka connector jar works with PyFlink 2.3: a keyed count job, exactly once, in-process."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from streaming_agents.runtime.environment import local_env
from streaming_agents.testing.kafka import consume_committed, end_offsets, produce

JOB = Path(__file__).parent / "jobs" / "kafka_count_job.py"
KEYS = ("alpha", "beta", "gamma")
PER_KEY = 5


def load_job(path: Path) -> ModuleType:
    """Import a job file by path (its functions are then pickled by value)."""
    name = f"sa_test_job_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def events() -> list[tuple[str, str]]:
    return [(k, json.dumps({"key": k, "n": n})) for n in range(PER_KEY) for k in KEYS]


def check_counts(bootstrap: str, out_topic: str) -> None:
    """Exactly one output per input; per key the counts are 1..5 in order."""
    got = consume_committed(bootstrap, out_topic, expected=len(KEYS) * PER_KEY, linger_s=2.0)
    rows = [json.loads(m.value()) for m in got]
    assert len(rows) == len(KEYS) * PER_KEY, rows
    for key in KEYS:
        assert [r["count"] for r in rows if r["key"] == key] == list(range(1, PER_KEY + 1))
        assert [r["n"] for r in rows if r["key"] == key] == list(range(PER_KEY))
    # Written in Kafka transactions: their commit markers take offsets beyond the records.
    assert sum(end_offsets(bootstrap, out_topic).values()) > len(rows)


def test_count_job_exactly_once_local(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    in_topic, out_topic = topic_factory("events"), topic_factory("counts")
    produce(kafka_bootstrap, in_topic, events())

    env = local_env(checkpoint_interval_ms=500)
    load_job(JOB).build(
        env,
        kafka_bootstrap,
        in_topic,
        out_topic,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        transactional_id_prefix=f"tx-{out_topic}",
    )
    started = time.monotonic()
    env.execute("kafka-count-local")
    print(f"job ran in {time.monotonic() - started:.1f}s")

    check_counts(kafka_bootstrap, out_topic)
