"""Rescale through savepoints, 1 -> 2 -> 1, on two "hosts" with the Kafka journal.

``python -m streaming_agents.chaos.hosts --rescale``

On a :class:`~streaming_agents.chaos.cluster.HostsCluster` (two one-slot
TaskManagers, each with its own filesystem) the chaos job runs at
parallelism 1 (all keys on one host), is stopped with a savepoint while
events keep coming, restored at parallelism 2 (half the key groups move to
the other host), stopped again and restored at parallelism 1 (the keys of
one host move to the other).  Journal and memory: the Kafka journal
(``kafka://<run broker>/journal-<run>``), RocksDB keyed state.

What it counts: inputs against committed outputs (lost, duplicated, per-key
order, ``turn == seq + 1``), the LLM requests the fake received (total and
distinct; it injects no errors, so a repeated request is a call paid
again), the LLM calls in flight when each stop began (the most that may be
paid again: a call cancelled by the stop has no answer to journal), and the
journal hits: committed events whose LLM call was answered from the journal
instead of the fake LLM, read from the job's exactly-once audit topic
(``llm_call`` entries with outcome ``journal``).  Each phase's subtask
placement (TaskManager ids) is printed, so the keys' moves are visible.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming_agents.chaos.cluster import HostsCluster
from streaming_agents.chaos.harness import _Run
from streaming_agents.chaos.plan import ChaosPlan
from streaming_agents.chaos.report import verdict
from streaming_agents.testing.kafka import consume_committed, create_topics

__all__ = ["RescaleFigures", "audit_outcomes", "run_rescale"]


@dataclass
class RescaleFigures:
    """What one rescale run measured."""

    inputs: int = 0
    outputs: int = 0
    lost: int = 0
    duplicated: int = 0
    order_violations: int = 0
    wrong_turns: int = 0
    requests_total: int = 0
    requests_distinct: int = 0
    in_flight_at_stops: list[int] = field(default_factory=list)
    journal_hits: int = 0
    paid_calls_committed: int = 0  # audit entries with outcome "paid"
    phases: list[str] = field(default_factory=list)  # "p=N on [tm ids]"
    key_leaks: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def paid_again(self) -> int:
        return self.requests_total - self.requests_distinct

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and self.inputs > 0
            and self.lost == self.duplicated == self.order_violations == self.wrong_turns == 0
            and self.key_leaks == 0
            and self.paid_again <= sum(self.in_flight_at_stops)
        )


def audit_outcomes(bootstrap: str, topic: str) -> dict[str, int]:
    """Count the committed audit trail's ``llm_call`` entries by outcome."""
    counts: dict[str, int] = {}
    for message in consume_committed(bootstrap, topic, timeout_s=30, idle_s=3):
        entry = json.loads(message.value())
        if entry.get("kind") == "llm_call":
            outcome = str(entry.get("outcome"))
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


class _RescaleRun(_Run):
    def __init__(self, plan: ChaosPlan) -> None:
        super().__init__(plan, lambda line: print(line, flush=True))
        assert isinstance(self.cluster, HostsCluster)
        self.hosts = self.cluster
        self.parallelism = 1
        self.audit_topic = f"chaos-audit-{self.tag}"
        self.extra_args = ["--audit", self.audit_topic]
        self.figures = RescaleFigures()

    def submit(self, checkpoint: Path | str | None = None) -> None:
        if not self.result.jobs:  # the first submit: the broker is up now
            create_topics(self.kafka.bootstrap, [self.audit_topic], partitions=1)
        super().submit(checkpoint)
        placement = self.hosts.placement(self.job_id)
        self.figures.phases.append(f"p={self.parallelism} on {placement}")
        self.log(f"[{self.now():6.1f}s] job {self.job_id} at p={self.parallelism}, "
                 f"agent subtasks on TaskManagers {placement}")  # fmt: skip

    def rescale_to(self, parallelism: int, phase_s: float) -> None:
        """Run ``phase_s`` more, stop with a savepoint, restore at ``parallelism``."""
        time.sleep(phase_s)
        self.figures.in_flight_at_stops.append(int(self.llm.stats()["in_flight"]))
        started = time.monotonic()
        savepoint = self.hosts.stop_with_savepoint(self.job_id, self.plan.run_dir / "savepoints")
        self.hosts.wait_job(self.job_id, {"FINISHED"}, timeout_s=120)
        took, in_flight = time.monotonic() - started, self.figures.in_flight_at_stops[-1]
        self.log(f"[{self.now():6.1f}s] stopped with a savepoint in {took:.1f} s "
                 f"({in_flight} calls in flight at the stop)")  # fmt: skip
        self.parallelism = parallelism
        self.submit(savepoint)


def run_rescale(run_dir: Path, *, phase_s: float = 20.0, rate: float = 10.0,
                keys: int = 20) -> RescaleFigures:  # fmt: skip
    """1 -> 2 -> 1 through savepoints; never raises for a failed guarantee (see ``errors``)."""
    from streaming_agents.chaos.hosts import hosts_plan

    plan = hosts_plan(run_dir, "kafka", rate=rate, keys=keys, checkpoint_ms=5_000)
    run = _RescaleRun(plan)
    figures = run.figures
    try:
        run.start()
        run.rescale_to(2, phase_s)
        run.rescale_to(1, phase_s)
        run.drain()
        hits = audit_outcomes(run.kafka.bootstrap, run.audit_topic)
        figures.journal_hits = hits.get("journal", 0)
        figures.paid_calls_committed = hits.get("called", 0)
    except Exception as exc:  # noqa: BLE001 - reported with what was seen
        run.result.errors.append(f"{type(exc).__name__}: {str(exc)[:500]}")
        run.result.llm = run.llm.stats()
    finally:
        run.close()
    _fill(figures, run)
    return figures


def _fill(figures: RescaleFigures, run: _Run) -> None:
    result = run.result
    found = verdict(
        result.inputs, result.outputs, len(result.dead_letters), result.errors, result.leaks
    )
    by_name = {check.name: int(check.value) for check in found.checks}
    llm: dict[str, Any] = result.llm
    figures.inputs, figures.outputs = len(result.inputs), len(result.outputs)
    figures.lost = by_name["every input has an output (lost)"]
    figures.duplicated = by_name["duplicates"]
    figures.order_violations = by_name["per-key order violations"]
    figures.wrong_turns = by_name["turn != seq + 1 (memory lost/doubled)"]
    figures.requests_total = int(llm.get("requests_total", 0))
    figures.requests_distinct = int(llm.get("requests_distinct", 0))
    figures.key_leaks = len(result.leaks)
    figures.errors = list(result.errors)


def render_rescale(f: RescaleFigures) -> str:
    """The run's figures as a Markdown table and a verdict line."""
    lines = [
        "| phases (agent subtasks on TaskManagers) | inputs / outputs | lost / duplicated / "
        "order / wrong turns | LLM requests total / distinct | paid again | calls in flight "
        "at the stops | journal hits (committed) |",
        "|---|---|---|---|---|---|---|",
        f"| {' -> '.join(f.phases)} | {f.inputs} / {f.outputs} | {f.lost} / {f.duplicated} / "
        f"{f.order_violations} / {f.wrong_turns} | {f.requests_total} / {f.requests_distinct} | "
        f"{f.paid_again} | {' + '.join(map(str, f.in_flight_at_stops))} | {f.journal_hits} |",
        f"  committed LLM calls paid at the fake: {f.paid_calls_committed}; "
        f"files holding the API key: {f.key_leaks}",
        *(f"  error: {e}" for e in f.errors),
        f"RESCALE VERDICT: {'PASS' if f.ok else 'FAIL'}",
    ]
    return "\n".join(lines)
