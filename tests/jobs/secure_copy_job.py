"""Copy a topic to another, upper-cased, over a secured Kafka, plus an audit record each.

Kafka (SASL_SSL, one agent principal) -> Python map -> exactly-once Kafka sink,
and the same records as audit lines through :func:`audit_sink` (Table API,
headers).  Every Kafka client gets the setting of ``--security`` (a
``--command-config``-style properties file whose password is a reference).

Before running, the job writes what the cluster would receive: the serialised
``JobGraph`` (``jobgraph.bin``, Java serialisation of the graph with every
operator's serialised user code: the Kafka source and sinks with their
properties) and its JSON plan (``plan.json``, what the REST API's
``/jobs/<id>/plan`` serves), so a test can search them for secrets.

Run: ``python tests/jobs/secure_copy_job.py --bootstrap ... --security FILE
--in T --out T --audit T --group G --txn-prefix P --graph-dir DIR``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pyflink.common import Types, WatermarkStrategy
from pyflink.java_gateway import get_gateway

from streaming_agents.connectors.audit import audit_sink
from streaming_agents.connectors.kafka import exactly_once_sink, kafka_source
from streaming_agents.connectors.security import load_security
from streaming_agents.runtime.environment import local_env


def _upper(value: str) -> str:
    return value.upper()


def _audit_line(value: str) -> str:
    return json.dumps({"trace_id": value[:8], "agent": "copy", "version": "1", "kind": "copied"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("bootstrap", "security", "in", "out", "audit", "group", "txn-prefix"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--graph-dir", type=Path, required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    args = parser.parse_args(argv)
    security = load_security(args.security)
    # No restarts: a refused principal fails the job at once, with the broker's error.
    env = local_env(
        checkpoint_interval_ms=300,
        checkpoint_dir=args.checkpoint_dir,
        extra_config={"restart-strategy.type": "none"},
    )
    source = kafka_source(args.bootstrap, getattr(args, "in"), args.group, bounded=True,
                          security=security)  # fmt: skip
    copied = env.from_source(source, WatermarkStrategy.no_watermarks(), "in").map(
        _upper, output_type=Types.STRING()
    )
    copied.sink_to(
        exactly_once_sink(args.bootstrap, args.out, f"{args.txn_prefix}-out", security=security)
    )
    audit = copied.map(_audit_line, output_type=Types.STRING())
    audit_sink(env, audit, args.bootstrap, args.audit, f"{args.txn_prefix}-audit",
               security=security)  # fmt: skip
    # A graph for inspection only: turning it into a JobGraph serialises its operators,
    # after which it cannot be submitted; env.execute() builds a fresh one.
    stream_graph = env._generate_stream_graph(clear_transformations=False)
    # The connector classes live in the class loader of pipeline.jars, not the default one.
    loader = source.get_java_function().getClass().getClassLoader()
    job_graph = stream_graph.getJobGraph(loader, None)
    jvm = get_gateway().jvm
    args.graph_dir.mkdir(parents=True, exist_ok=True)
    serialized = jvm.org.apache.flink.util.InstantiationUtil.serializeObject(job_graph)
    (args.graph_dir / "jobgraph.bin").write_bytes(bytes(serialized))
    plan = jvm.org.apache.flink.runtime.jobgraph.jsonplan.JsonPlanGenerator.generatePlan(job_graph)
    (args.graph_dir / "plan.json").write_text(str(plan))
    env.execute("secure-copy")
    print("secure-copy finished")


if __name__ == "__main__":
    main()
