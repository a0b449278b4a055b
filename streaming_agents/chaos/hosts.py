"""Two "hosts" and one TaskManager kill: does the journal hold across machines?

``python -m streaming_agents.chaos.hosts [--journal kafka|sqlite|both]``
(``--rescale``: :mod:`streaming_agents.chaos.rescale`; ``--budget``:
:mod:`streaming_agents.chaos.budget`, on the same layout)

A :class:`HostsCluster` runs one JobManager and TaskManagers of one slot
each, every TaskManager in its own mount namespace (``unshare -m``, needs
root) with a private tmpfs over ``<run>/host``: they share the machine but
not that folder, as two hosts would not.  The chaos job runs at parallelism 2
(one subtask per "host") with either the Kafka journal or a SQLite journal
at ``<run>/host/journal.sqlite`` (so a file per host).  Late in a checkpoint
interval (``kill_after_s`` after a checkpoint completed) one TaskManager is
killed with ``kill -9`` and a new one (a new host, an empty disk) started.
The run prints lost/duplicated outputs, per-key order, and the two figures
that matter for the journal: LLM calls answered before the kill and paid
again (``requests_total - requests_distinct``; the fake LLM injects no
errors here, so no request repeats for another reason) against the calls in
flight at the kill (the most that may be paid again).

It reuses the chaos harness (:mod:`streaming_agents.chaos.harness`): its
traffic, drain and verdict; only the cluster layout, the journal and the
fault differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streaming_agents.chaos.cluster import HostsCluster
from streaming_agents.chaos.harness import _Run
from streaming_agents.chaos.plan import ChaosPlan
from streaming_agents.chaos.report import verdict
from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import repo_root

__all__ = ["HostsCluster", "HostsFigures", "hosts_plan", "run_hosts"]


@dataclass
class HostsFigures:
    """What one run measured."""

    journal: str
    inputs: int
    outputs: int
    lost: int
    duplicated: int
    order_violations: int
    requests_total: int
    requests_distinct: int
    in_flight_at_kill: int
    key_leaks: int  # files of the run (logs, checkpoints, journal, broker data) with the API key
    errors: list[str]

    @property
    def paid_again(self) -> int:
        return self.requests_total - self.requests_distinct


class _HostsRun(_Run):
    def __init__(self, plan: ChaosPlan, kill_after_s: float) -> None:
        super().__init__(plan, lambda line: print(line, flush=True))
        self.kill_after_s = kill_after_s
        assert isinstance(self.cluster, HostsCluster)
        self.hosts = self.cluster
        self.in_flight_at_kill = 0

    def _last_checkpoint_ms(self) -> int | None:
        completed = self.cluster.rest(f"/jobs/{self.job_id}/checkpoints")["latest"]["completed"]
        return None if not completed else int(completed["latest_ack_timestamp"])

    def kill_late_in_interval(self) -> None:
        """Kill one TaskManager ``kill_after_s`` after a checkpoint, before the next one."""
        deadline = time.monotonic() + 10 * self.plan.checkpoint_ms / 1000 + 60
        seen = self._last_checkpoint_ms()
        while True:
            if time.monotonic() > deadline:
                raise InfrastructureError("no checkpoint interval to kill in")
            ack = self._last_checkpoint_ms()
            if ack is None or ack == seen:
                time.sleep(0.2)
                continue
            time.sleep(max(0.0, ack / 1000 + self.kill_after_s - time.time()))
            if self._last_checkpoint_ms() == ack:  # no newer checkpoint meanwhile
                break
            seen = ack
        self.in_flight_at_kill = int(self.llm.stats()["in_flight"])
        pid = self.hosts.kill_one_taskmanager()
        self.log(f"[{self.now():6.1f}s] kill -9 TaskManager {pid} "
                 f"{time.time() - ack / 1000:.1f} s after a checkpoint; "
                 f"{self.in_flight_at_kill} calls in flight")  # fmt: skip
        self.cluster.start_taskmanager()
        self.log(f"[{self.now():6.1f}s] a new TaskManager (new host, empty disk) started")


def hosts_plan(run_dir: Path, journal: str, **overrides: Any) -> ChaosPlan:
    """Two hosts, no injected LLM errors (so every repeated request is a crash's)."""
    settings: dict[str, Any] = {
        "run_dir": run_dir, "hosts": True, "journal": journal, "faults": (), "rate": 10.0,
        "checkpoint_ms": 20_000, "rate_429": 0.0, "rate_500": 0.0, "rate_timeout": 0.0,
        "warmup_s": 3.0, "tail_s": 15.0, "linger_s": 5.0,
    }  # fmt: skip
    settings.update(overrides)
    return ChaosPlan(**settings)


def run_hosts(journal: str, run_dir: Path, *, checkpoint_ms: int = 20_000,
              kill_after_s: float = 18.0, rate: float = 10.0) -> HostsFigures:  # fmt: skip
    """One run; never raises for a failed guarantee (see ``errors``)."""
    plan = hosts_plan(run_dir, journal, checkpoint_ms=checkpoint_ms, rate=rate)
    run = _HostsRun(plan, kill_after_s)
    try:
        run.start()
        run.kill_late_in_interval()
        run.drain()
    except Exception as exc:  # noqa: BLE001 - reported with what was seen
        run.result.errors.append(f"{type(exc).__name__}: {str(exc)[:500]}")
        run.result.llm = run.llm.stats()
    finally:
        run.close()
    result = run.result
    found = verdict(
        result.inputs, result.outputs, len(result.dead_letters), result.errors, result.leaks
    )
    by_name = {check.name: int(check.value) for check in found.checks}
    llm: dict[str, Any] = result.llm
    return HostsFigures(
        journal=journal, inputs=len(result.inputs), outputs=len(result.outputs),
        lost=by_name["every input has an output (lost)"], duplicated=by_name["duplicates"],
        order_violations=by_name["per-key order violations"],
        requests_total=int(llm.get("requests_total", 0)),
        requests_distinct=int(llm.get("requests_distinct", 0)),
        in_flight_at_kill=run.in_flight_at_kill, key_leaks=len(result.leaks),
        errors=list(result.errors),
    )  # fmt: skip


def _other_modes(args: argparse.Namespace) -> int | None:
    """``--rescale`` / ``--budget``: their own runs (imported here: they build on this module)."""
    if args.rescale:
        from streaming_agents.chaos.rescale import render_rescale, run_rescale

        rescaled = run_rescale(repo_root() / ".run" / "hosts-rescale", phase_s=args.phase_s,
                               rate=args.rate)  # fmt: skip
        print("\n" + render_rescale(rescaled))
        return 0 if rescaled.ok else 1
    if args.budget:
        from streaming_agents.chaos.budget import render_budget, run_budget

        spent = run_budget(repo_root() / ".run" / "hosts-budget", budget=args.budget_tokens,
                           reserve=args.reserve_tokens, rate=args.rate)  # fmt: skip
        print("\n" + render_budget(spent))
        return 0 if spent.ok else 1
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.chaos.hosts")
    parser.add_argument("--journal", choices=("kafka", "sqlite", "both"), default="both")
    parser.add_argument("--checkpoint-ms", type=int, default=20_000)
    parser.add_argument("--kill-after-s", type=float, default=18.0)
    parser.add_argument("--rate", type=float, default=10.0)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--rescale",
        action="store_true",
        help="instead: rescale 1 -> 2 -> 1 through savepoints (Kafka journal)",
    )
    mode.add_argument("--budget", action="store_true",
                      help="instead: one budget at parallelism 2 (Kafka ledger)")  # fmt: skip
    parser.add_argument("--phase-s", type=float, default=20.0, help="--rescale: s per phase")
    parser.add_argument("--budget-tokens", type=int, default=6_000, help="--budget: tokens/h")
    parser.add_argument("--reserve-tokens", type=int, default=120, help="--budget: per call")
    args = parser.parse_args(argv)
    other = _other_modes(args)
    if other is not None:
        return other
    kinds = ("kafka", "sqlite") if args.journal == "both" else (args.journal,)
    rows = []
    for kind in kinds:
        run_dir = repo_root() / ".run" / f"hosts-{kind}"
        rows.append(run_hosts(kind, run_dir, checkpoint_ms=args.checkpoint_ms,
                              kill_after_s=args.kill_after_s, rate=args.rate))  # fmt: skip
    print("\n| journal | inputs / outputs | lost / duplicated / order | LLM requests total / "
          "distinct | answered calls paid again | calls in flight at the kill |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for f in rows:
        print(f"| {f.journal} | {f.inputs} / {f.outputs} | {f.lost} / {f.duplicated} / "
              f"{f.order_violations} | {f.requests_total} / {f.requests_distinct} | "
              f"{f.paid_again} | {f.in_flight_at_kill} |")  # fmt: skip
        print(f"  {f.journal}: files holding the API key: {f.key_leaks}")
        for error in f.errors:
            print(f"  {f.journal}: {error}")
    kafka = [f for f in rows if f.journal == "kafka"]
    ok = all(not f.errors and f.lost == f.duplicated == f.key_leaks == 0 for f in rows) and all(
        f.paid_again <= f.in_flight_at_kill for f in kafka
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
