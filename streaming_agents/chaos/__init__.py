"""Chaos runs: exactly-once of the agent job proven on a real cluster, with counts.

``python -m streaming_agents.chaos`` (``make chaos``) runs the long variant and
prints the report; ``tests/test_chaos.py`` runs the short one over SASL_SSL
(``--secure``, ``make chaos SECURE=1``: the secured broker, the job as its own
least-privilege principal; :mod:`streaming_agents.chaos.identity`).  See
docs/reliability.md for what the figures mean.
"""

from streaming_agents.chaos.harness import run_chaos
from streaming_agents.chaos.plan import ChaosPlan, ChaosResult, long_plan, short_plan
from streaming_agents.chaos.report import FaultRecord, Verdict, render, verdict

__all__ = [
    "ChaosPlan",
    "ChaosResult",
    "FaultRecord",
    "Verdict",
    "judge",
    "long_plan",
    "render",
    "run_chaos",
    "short_plan",
    "verdict",
]


def _repeated_ok(llm: dict[str, object]) -> int:
    by_status = llm.get("by_status") or {}
    ok = int(by_status.get("200", 0)) if isinstance(by_status, dict) else 0
    return max(0, ok - int(str(llm.get("requests_distinct", 0))))


def judge(result: ChaosResult) -> tuple[Verdict, str]:
    """The verdict of a run and its printed report."""
    found = verdict(
        result.inputs, result.outputs, len(result.dead_letters), result.errors, result.leaks
    )
    extra = {
        "jobs submitted": ", ".join(result.jobs) or "-",
        "restored from retained checkpoint": ", ".join(result.restored_from) or "-",
        "checkpoints of the last job": result.checkpoints or "-",
        "files searched for the secrets": result.files_scanned,
        "secrets searched for": ", ".join(result.secrets_searched) or "API key",
        "cluster log files showing sasl.jaas.config = [hidden] (probe)": (
            result.jaas_probe_files if result.plan.secure else "-"
        ),
        "LLM calls in flight at each TaskManager/JobManager kill": ", ".join(
            str(n) for n in result.in_flight_at_kills
        )
        or "-",
        "200s repeated (paid again) vs calls in flight at the kills (sum)": (
            f"{_repeated_ok(result.llm)} vs {sum(result.in_flight_at_kills)}"
        ),
        "backlog worked off after production stopped": f"{result.drain_s:.0f} s",
        "input produced -> output committed and seen (s)": ", ".join(
            f"{k} {v:.1f}" for k, v in result.lag_s.items()
        )
        or "-",
    }
    title = "Chaos run: Kafka -> agent (RocksDB keyed memory) -> EXACTLY_ONCE Kafka"
    if result.plan.hosts:
        title += f", two hosts, {result.plan.journal} journal"
    return found, render(title, result.settings(), result.faults, found, result.llm, extra)
