"""A job built only on the public API, as the README shows it, for the hostile corpus.

``kafka_records`` -> ``json_key("k")`` -> ``run_agent`` (echo agent on the fake LLM)
-> exactly-once outputs + ``dead_letters``.  Unbounded: it runs until cancelled.
``flink run -py tests/jobs/hostile_api_job.py --bootstrap ... --in ... --out ... --dlq ...``
"""

from __future__ import annotations

import argparse
import sys

import cloudpickle

from streaming_agents import Agent, ModelSpec, dead_letters, run_agent
from streaming_agents.connectors.kafka import exactly_once_sink
from streaming_agents.connectors.kafka_records import json_key, kafka_records
from streaming_agents.runtime.environment import local_env

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def main(argv: list[str] | None = None) -> None:
    from pyflink.common import Types

    parser = argparse.ArgumentParser()
    for name in ("--bootstrap", "--in", "--out", "--dlq", "--api-base", "--job-name"):
        parser.add_argument(name, required=True)
    args = parser.parse_args(argv)
    agent = Agent(
        name="hostile-echo",
        version="1",
        model=ModelSpec(
            model="openai/fake-model", api_base=args.api_base, api_key_env="FAKE_LLM_API_KEY"
        ),
        prompt="{k}#{seq}",
    )
    env = local_env(checkpoint_interval_ms=1000)
    rows = kafka_records(env, args.bootstrap, getattr(args, "in"), "hostile-api")
    out = run_agent(rows.key_by(json_key("k"), key_type=Types.STRING()), agent)
    out.sink_to(exactly_once_sink(args.bootstrap, args.out, f"hostile-{args.out}"))
    dead_letters(out).sink_to(exactly_once_sink(args.bootstrap, args.dlq, f"hostile-{args.dlq}"))
    env.execute(args.job_name)


if __name__ == "__main__":
    main()
