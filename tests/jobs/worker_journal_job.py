"""The echo agent with no journal named in the job: the workers' setting decides.

``flink run -py tests/jobs/worker_journal_job.py --bootstrap ... --in ... --out ...
--api-base ...``: Kafka -> key_by k -> run_agent(journal=None) -> Kafka, bounded.
The journal is whatever ``$STREAMING_AGENTS_JOURNAL`` says on the TaskManager.
"""

from __future__ import annotations

import argparse
import json

from pyflink.common import Types, WatermarkStrategy

from streaming_agents import Agent, ModelSpec, run_agent
from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.runtime.environment import local_env

AGENT_NAME = "worker-journal"


def _key_of(value: str) -> str:
    return str(json.loads(value).get("k", "?"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--bootstrap", "--in", "--out", "--api-base"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    env = local_env(checkpoint_interval_ms=2000)
    source = kafka_source(args.bootstrap, getattr(args, "in"), "worker-journal", bounded=True)
    keyed = env.from_source(source, WatermarkStrategy.no_watermarks(), "events").key_by(
        _key_of, key_type=Types.STRING()
    )
    model = ModelSpec(model="openai/fake-model", api_base=args.api_base,
                      api_key_env="FAKE_LLM_API_KEY")  # fmt: skip
    agent = Agent(name=AGENT_NAME, version="1", model=model, prompt="{k}#{seq}")
    out = run_agent(keyed, agent)  # no journal: resolved on the worker
    out.sink_to(exactly_once_sink(args.bootstrap, args.out, f"wj-{args.out}"))
    env.execute("worker-journal")


if __name__ == "__main__":
    main()
