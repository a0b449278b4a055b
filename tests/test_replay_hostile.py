"""A replay of a topic holding the hostile corpus: every record decided, the run ends.

``streaming-agents replay`` runs as a new process (the way a user dark-launches
a candidate) over a real topic holding every case of
:mod:`streaming_agents.testing.hostile`, each followed by a valid event.  The
replay reads bytes with their coordinates through the same input path as
production jobs (``AgentPipeline.from_kafka``), so the shadow topic must hold,
committed, one output per valid record and one dead letter per bad one (with
its reason and exact offset), nothing else, every record small enough for the
sink; the command exits 0 with ``--max-dead-letter-ratio 1`` and prints the
same counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_support import FAKE_KEY_ENV
from hostile_support import check_outcomes

from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.hostile import (
    OUTPUT,
    corpus_with_valid_events,
    create_corpus_topic,
    produce_cases,
)
from streaming_agents.testing.kafka import consume_committed

CLI = [sys.executable, "-m", "streaming_agents.cli.main"]
SINK_MAX_REQUEST_BYTES = 1_048_576  # the Kafka producer's default max.request.size
AGENT = """
import os
from streaming_agents import Agent, ModelSpec

agent = Agent(
    name="hostile-replay", version="2",
    model=ModelSpec(model="openai/fake-model", api_base=os.environ["HOSTILE_LLM"],
                    api_key_env="{key_env}", num_retries=1),
    prompt="{{k}}#{{seq}}",
)
"""


def _split(records: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    too_big = [len(m.value()) for m in records if len(m.value()) > SINK_MAX_REQUEST_BYTES]
    assert not too_big, f"shadow records above {SINK_MAX_REQUEST_BYTES} bytes: {too_big}"
    docs = [json.loads(m.value()) for m in records]
    assert all(d.get("shadow") is True for d in docs), [d for d in docs if not d.get("shadow")][:2]
    return [d for d in docs if not d.get("dead_letter")], [d for d in docs if d.get("dead_letter")]


def test_replay_decides_every_hostile_record_and_finishes(
    tmp_path: Path,
    fake_llm: FakeLLM,
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
) -> None:
    topic, shadow = topic_factory("replay-hostile") + "-big", topic_factory("replay-hostile-sh")
    create_corpus_topic(kafka_bootstrap, topic)
    cases = corpus_with_valid_events("k")
    produce_cases(kafka_bootstrap, topic, cases)
    (tmp_path / "hostile_agent.py").write_text(AGENT.format(key_env=FAKE_KEY_ENV))
    env = {**os.environ, "HOSTILE_LLM": fake_llm.base_url, FAKE_KEY_ENV: "sk-fake"}
    done = subprocess.run(
        [*CLI, "replay", "--agent", "hostile_agent:agent", "--topic", topic,
         "--shadow-topic", shadow, "--key", "k", "--bootstrap", kafka_bootstrap,
         "--run-dir", str(tmp_path / "runs"), "--no-progress", "--max-dead-letter-ratio", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    n_out = sum(c.expect == OUTPUT for c in cases)
    assert f"{n_out} outputs, {len(cases) - n_out} dead letters" in done.stdout, done.stdout

    records = consume_committed(
        kafka_bootstrap, shadow, expected=len(cases), linger_s=2, timeout_s=120
    )
    outputs, dead = _split(records)
    for doc in [*outputs, *dead]:
        assert doc["replay"]["topic"] == topic, doc["replay"]
    check_outcomes(cases, outputs, dead, topic)
