"""What a chaos run does (:class:`ChaosPlan`, with the short and long presets) and
what it saw (:class:`ChaosResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming_agents.chaos.report import FaultRecord
from streaming_agents.runtime.environment import repo_root

__all__ = ["ChaosPlan", "ChaosResult", "long_plan", "short_plan"]


@dataclass
class ChaosPlan:
    """What to run and what to break (:func:`short_plan` and :func:`long_plan` are the presets)."""

    run_dir: Path = field(default_factory=lambda: repo_root() / ".run" / "chaos")
    keys: int = 20
    rate: float = 10.0  # events per second, all keys together
    faults: tuple[str, ...] = ("tm", "broker", "tm", "jm", "tm")
    gap_s: tuple[float, float] = (4.0, 12.0)  # random wait before each fault
    warmup_s: float = 5.0  # outputs flowing this long before the first fault
    tail_s: float = 10.0  # production goes on this long after the last recovery
    seed: int = 1
    checkpoint_ms: int = 3000
    parallelism: int = 2
    rate_429: float = 0.10
    rate_500: float = 0.05
    rate_timeout: float = 0.02
    llm_timeout_s: float = 2.0  # how long the fake hangs on a timeout fault
    model_timeout_s: float = 1.0  # ModelSpec.timeout_s: the client gives up first
    latency_ms: tuple[float, float] = (20.0, 250.0)
    recovery_timeout_s: float = 180.0
    drain_timeout_s: float = 900.0  # backlog of the faults, worked off after production stops
    stall_s: float = 90.0  # ...but no new output for this long is a failure
    linger_s: float = 8.0
    # The layout: ``hosts`` = two one-slot TaskManagers, each with its own filesystem
    # (HostsCluster); else one two-slot TaskManager.  ``journal``: "kafka" (a topic of
    # the run's broker) or "sqlite" (a file; on ``hosts`` one per host).
    hosts: bool = False
    journal: str = "sqlite"
    # ``secure``: the secured broker (SASL_SSL, SCRAM, ACLs), the job as its own
    # least-privilege principal (streaming_agents.chaos.identity).
    secure: bool = False

    def fake_llm_config(self) -> dict[str, Any]:
        low, high = self.latency_ms
        return {
            "seed": self.seed,
            "latency_ms": {"kind": "uniform", "min_ms": low, "max_ms": high},
            "rate_429": self.rate_429,
            "rate_500": self.rate_500,
            "rate_timeout": self.rate_timeout,
            "retry_after_s": 1,
            "timeout_s": self.llm_timeout_s,
        }


@dataclass
class ChaosResult:
    """Everything observed: inputs, committed outputs (topic order), faults, LLM counts."""

    plan: ChaosPlan
    inputs: list[tuple[str, int]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    llm: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    restored_from: list[str] = field(default_factory=list)
    checkpoints: dict[str, Any] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)  # files holding the run's API key
    files_scanned: int = 0
    drain_s: float = 0.0  # production stop to the last input's output
    lag_s: dict[str, float] = field(default_factory=dict)  # input produced to output seen
    duration_s: float = 0.0
    in_flight_at_kills: list[int] = field(default_factory=list)  # LLM calls, per TM/JM kill
    secrets_searched: list[str] = field(default_factory=list)  # what the file scan looked for
    jaas_probe_files: int = 0  # cluster log files showing "sasl.jaas.config = [hidden]"
    principal: str = ""  # the job's Kafka principal on the secured broker

    def settings(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "keys": plan.keys,
            "rate": f"{plan.rate:g}/s",
            "seed": plan.seed,
            "checkpoint": f"{plan.checkpoint_ms} ms",
            "parallelism": plan.parallelism,
            "layout": "two TaskManagers, own filesystems" if plan.hosts else "one TaskManager",
            "journal": plan.journal,
            "kafka": f"SASL_SSL as {self.principal}" if plan.secure else "PLAINTEXT",
            "faults": f"429 {plan.rate_429:.0%}, 500 {plan.rate_500:.0%}, "
            f"timeout {plan.rate_timeout:.0%} ({plan.llm_timeout_s:g} s hang, "
            f"ModelSpec.timeout_s {plan.model_timeout_s:g})",
            "duration": f"{self.duration_s:.0f} s",
        }


def short_plan(**overrides: Any) -> ChaosPlan:
    """A broker restart, a JobManager kill, then a TaskManager kill; 20 keys at 8 events/s.

    One fault of each kind, to stay cheap in ``make test`` (the long plan repeats
    the TaskManager kill).  The TaskManager kill comes last, so it hits the job
    restored from a retained checkpoint after the JobManager kill: the restored
    job must fail over again (to its own latest checkpoint, or to the one it was
    restored from when it has none yet).  The gaps span one checkpoint interval
    (3 s), so the faults land at random checkpoint phases.
    """
    settings: dict[str, Any] = {
        "rate": 8.0,
        "faults": ("broker", "jm", "tm"),
        "gap_s": (1.0, 4.0),
        "warmup_s": 2.0,
        "tail_s": 4.0,
        "linger_s": 5.0,
    }
    settings.update(overrides)
    return ChaosPlan(**settings)


def long_plan(**overrides: Any) -> ChaosPlan:
    """5 TaskManager kills, a broker restart, a JobManager kill; 50 keys at 12 events/s.

    On two TaskManagers that each see their own filesystem (two hosts), one
    killed at a time, with the Kafka journal.
    """
    settings: dict[str, Any] = {
        "hosts": True,
        "journal": "kafka",
        "keys": 50,
        "rate": 12.0,
        "faults": ("tm", "tm", "broker", "tm", "jm", "tm", "tm"),
        "gap_s": (5.0, 20.0),
        "tail_s": 20.0,
    }
    settings.update(overrides)
    return ChaosPlan(**settings)
