"""Count events per key: Kafka (JSON) -> key_by -> keyed ValueState -> Kafka, exactly once.

Input records ``{"key": str, "n": int}``; for each one the job emits
``{"key": key, "count": events seen so far for key, "n": n}``.  The count
lives in keyed ``ValueState`` (operator uid ``count-per-key``), so it is part
of every checkpoint and survives restarts; the sink commits one Kafka
transaction per checkpoint.

In-process: ``build(local_env(), ...)`` then ``env.execute()``.
On a cluster: ``flink run -py tests/jobs/kafka_count_job.py --bootstrap ... --in ... --out ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.state import ValueStateDescriptor

from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.runtime.environment import local_env


class CountPerKey(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed counter; its only state is one ``ValueState[int]`` per key."""

    def open(self, runtime_context: RuntimeContext) -> None:
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value: str, ctx: KeyedProcessFunction.Context) -> Any:
        event = json.loads(value)
        count = (self.count.value() or 0) + 1
        self.count.update(count)
        yield json.dumps({"key": event["key"], "count": count, "n": event.get("n")})


def _key_of(value: str) -> str:
    return str(json.loads(value)["key"])


def build(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    in_topic: str,
    out_topic: str,
    *,
    group_id: str = "kafka-count-job",
    transactional_id_prefix: str | None = None,
    bounded: bool = True,
) -> None:
    """Add the pipeline to ``env`` (call ``env.execute()`` afterwards)."""
    if __name__ != "__main__":
        # Ship this module's functions by value: the Python workers cannot import `tests`.
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    source = kafka_source(bootstrap, in_topic, group_id, bounded=bounded)
    sink = exactly_once_sink(bootstrap, out_topic, transactional_id_prefix or f"count-{out_topic}")
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
        .uid("events-source")
        .key_by(_key_of, key_type=Types.STRING())
        .process(CountPerKey(), output_type=Types.STRING())
        .uid("count-per-key")
        .name("count-per-key")
        .sink_to(sink)
        .uid("counts-sink")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--in", dest="in_topic", required=True)
    parser.add_argument("--out", dest="out_topic", required=True)
    parser.add_argument("--group-id", default="kafka-count-job")
    parser.add_argument("--txn-prefix", default=None)
    parser.add_argument("--unbounded", action="store_true")
    parser.add_argument("--checkpoint-ms", type=int, default=1000)
    parser.add_argument("--state-backend", choices=["hashmap", "rocksdb"], default="rocksdb")
    parser.add_argument("--job-name", default="kafka-count-job")
    args = parser.parse_args(argv)
    env = local_env(checkpoint_interval_ms=args.checkpoint_ms, state_backend=args.state_backend)
    build(
        env,
        args.bootstrap,
        args.in_topic,
        args.out_topic,
        group_id=args.group_id,
        transactional_id_prefix=args.txn_prefix,
        bounded=not args.unbounded,
    )
    env.execute(args.job_name)


if __name__ == "__main__":
    main()
