"""One budget, two "hosts": the Kafka ledger at parallelism 2 on two TaskManagers.

``python -m streaming_agents.chaos.hosts --budget``

The chaos job runs on a :class:`~streaming_agents.chaos.cluster.HostsCluster`
(two one-slot TaskManagers, each with its own filesystem) at parallelism 2,
so each subtask is on its own host with its own ledger client (producer and
tailing consumer).  Its agent has ``Budget(max_tokens=B, window_s=3600,
on_exceeded="dead_letter", reserve_tokens=R, ledger="kafka://.../budget-<run>")``.
Events keep coming after the budget is spent: those are dead-lettered
``over budget``.

The stated bound (docs/design.md, "Budgets"): a window's spend exceeds ``B``
by at most the sum, over the calls in flight when it ran out, of
``max(0, actual - reserved)``; each subtask has at most ``capacity`` calls in
flight, so with ``m`` the largest call seen the bound is
``B + 2 * capacity * max(0, m - R)`` -- exactly ``B`` when ``R >= m``.  The
run prints that bound, the spend per window computed from the ledger topic
by a fresh reader (what a new host would compute), the tokens the committed
outputs report, and the verdict: every input one output or one ``over
budget`` dead letter, none lost or duplicated, spend within the bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming_agents.chaos.cluster import HostsCluster
from streaming_agents.chaos.harness import _Run
from streaming_agents.chaos.plan import ChaosPlan
from streaming_agents.journal.factory import open_ledger
from streaming_agents.journal.ledger import BudgetLimits
from streaming_agents.testing.kafka import end_offsets

__all__ = ["BudgetFigures", "ledger_spend", "run_budget"]

AGENT = "chaos-echo"  # jobs/chaos/job.py's agent
CAPACITY = 100  # jobs/chaos/job.py's --capacity default: calls in flight per subtask


@dataclass
class BudgetFigures:
    """What one budget run measured."""

    budget: int
    reserve: int
    inputs: int = 0
    outputs: int = 0
    over_budget: int = 0  # dead letters "over budget"
    other_dead: int = 0
    lost: int = 0
    duplicated: int = 0
    placement: list[str] = field(default_factory=list)
    largest_call: int = 0
    spent_by_window: dict[int, int] = field(default_factory=dict)  # from the ledger topic
    output_tokens: int = 0  # usage of the committed outputs
    requests_total: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def bound(self) -> int:
        return self.budget + 2 * CAPACITY * max(0, self.largest_call - self.reserve)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and self.inputs > 0
            and self.outputs > 0
            and self.over_budget > 0  # the budget did stop something
            and self.lost == self.duplicated == self.other_dead == 0
            and len(set(self.placement)) == 2  # the two subtasks on two hosts
            and all(spent <= self.bound for spent in self.spent_by_window.values())
            and sum(self.spent_by_window.values()) == self.output_tokens
        )


def ledger_spend(uri: str, agent: str, windows: list[int]) -> dict[int, int]:
    """Tokens spent per window as a fresh reader of the ledger computes them."""
    ledger = open_ledger(uri, agent=agent, window_s=3600)

    async def read() -> dict[int, int]:
        # a zero reservation in the newest window: returns once the reader has caught up
        await ledger.reserve(agent, windows[-1], BudgetLimits(None, None), 0, 0.0)
        return {w: ledger.spent(agent, w)[0] for w in windows}

    try:
        return asyncio.run(read())
    finally:
        ledger.close()


class _BudgetRun(_Run):
    def __init__(self, plan: ChaosPlan, budget: int, reserve: int) -> None:
        super().__init__(plan, lambda line: print(line, flush=True))
        assert isinstance(self.cluster, HostsCluster)
        self.hosts = self.cluster
        self.budget, self.reserve = budget, reserve
        self.windows = {int(time.time() // 3600)}

    def ledger_uri(self) -> str:
        return f"kafka://{self.kafka.bootstrap}/budget-{self.tag}"

    def job_args(self) -> list[str]:
        return [
            *super().job_args(),
            *("--budget-tokens", str(self.budget), "--reserve-tokens", str(self.reserve)),
            *("--ledger", self.ledger_uri()),
        ]

    def wait_drained(self, expected: set[tuple[str, int]], quiet_s: float = 20.0) -> None:
        """Until neither outputs nor dead letters grew for ``quiet_s`` (over-budget events
        have no output); what is missing then is counted as lost."""
        assert self.collector is not None
        seen, since = (-1, -1), time.monotonic()
        while time.monotonic() - since < quiet_s:
            now = (
                self.collector.count(),
                sum(end_offsets(self.kafka.bootstrap, self.topics["dlq"]).values()),
            )
            if now != seen:
                seen, since = now, time.monotonic()
            time.sleep(0.5)

    def submit(self, checkpoint: Path | str | None = None) -> None:
        super().submit(checkpoint)
        self.placement = self.hosts.placement(self.job_id)
        self.log(f"[{self.now():6.1f}s] agent subtasks on TaskManagers {self.placement}")


def run_budget(run_dir: Path, *, budget: int = 6_000, reserve: int = 120, rate: float = 10.0,
               tail_s: float = 45.0) -> BudgetFigures:  # fmt: skip
    """One run; never raises for a failed guarantee (see ``errors``)."""
    from streaming_agents.chaos.hosts import hosts_plan

    plan = hosts_plan(run_dir, "kafka", rate=rate, tail_s=tail_s, checkpoint_ms=5_000)
    run = _BudgetRun(plan, budget, reserve)
    figures = BudgetFigures(budget=budget, reserve=reserve)
    try:
        run.start()
        run.drain()
        run.windows.add(int(time.time() // 3600))
        figures.placement = run.placement
        figures.spent_by_window = ledger_spend(run.ledger_uri(), AGENT, sorted(run.windows))
    except Exception as exc:  # noqa: BLE001 - reported with what was seen
        run.result.errors.append(f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        run.close()
    _fill(figures, run)
    return figures


def _fill(figures: BudgetFigures, run: _Run) -> None:
    result = run.result
    answered = [(str(o["key"]), int(o["input"]["seq"])) for o in result.outputs]
    refused = [
        (str(d["payload"]["k"]), int(d["payload"]["seq"]))
        for d in result.dead_letters
        if d.get("reason") == "over budget" and isinstance(d.get("payload"), dict)
    ]
    counts = Counter(answered + refused)
    figures.inputs, figures.outputs = len(result.inputs), len(result.outputs)
    figures.over_budget = len(refused)
    figures.other_dead = len(result.dead_letters) - len(refused)
    figures.lost = len(set(result.inputs) - set(counts))
    figures.duplicated = sum(n - 1 for n in counts.values())
    usages = [_tokens(o) for o in result.outputs]
    figures.largest_call = max(usages, default=0)
    figures.output_tokens = sum(usages)
    figures.requests_total = int(result.llm.get("requests_total", 0))
    figures.errors = list(result.errors) + [f"API key in {where}" for where in result.leaks]


def _tokens(output: dict[str, Any]) -> int:
    usage = output.get("usage") or {}
    return int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))


def render_budget(f: BudgetFigures) -> str:
    """The run's figures as a Markdown table and a verdict line."""
    spent = ", ".join(f"{n:,}" for _, n in sorted(f.spent_by_window.items())) or "-"
    lines = [
        "| budget B (tokens/h) | reserved per call R | largest call | stated bound | spent "
        "(ledger, per window) | tokens in committed outputs | inputs / answered / over budget |"
        " lost / duplicated | LLM requests | subtasks on TaskManagers |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {f.budget:,} | {f.reserve} | {f.largest_call} | {f.bound:,} | {spent} | "
        f"{f.output_tokens:,} | {f.inputs} / {f.outputs} / {f.over_budget} | {f.lost} / "
        f"{f.duplicated} | {f.requests_total} | {f.placement} |",
        *(f"  error: {e}" for e in f.errors),
        f"  other dead letters: {f.other_dead}",
        f"BUDGET VERDICT: {'PASS' if f.ok else 'FAIL'}",
    ]
    return "\n".join(lines)
