"""The comparison report as data: what ``compare`` computes and the renderers show.

:class:`ComparisonReport` holds the numbers over the matched pairs (see
:mod:`streaming_agents.replay.compare` for how pairs are made), the differing
cases (with a judge's :class:`Verdict` when one was asked,
:mod:`streaming_agents.replay.judge`), every key's timeline (production beside
candidate, with audit trace ids) and what is known about the run
(:class:`RunInfo`: versions, models, range, memory start, divergences).
:func:`headline` is the one list of headline figures both the terminal table
and the HTML page print, so the two always agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from streaming_agents.replay.job import ReplayResult

__all__ = [
    "Case",
    "ComparisonReport",
    "FieldAgreement",
    "RunInfo",
    "SideStats",
    "TimelineEntry",
    "Verdict",
    "headline",
    "percentile",
]

Preference = Literal["production", "candidate", "tie", "not judged"]


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (linear interpolation; 0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = pct / 100.0 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class SideStats:
    """Usage of one side over the matched pairs."""

    outputs: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def add(self, output: dict[str, Any]) -> None:
        usage = output.get("usage") or {}
        self.outputs += 1
        self.llm_calls += int(usage.get("llm_calls", 0))
        self.prompt_tokens += int(usage.get("prompt_tokens", 0))
        self.completion_tokens += int(usage.get("completion_tokens", 0))
        self.cost_usd += float(usage.get("cost_usd", 0.0))
        self.latencies_ms.append(float(usage.get("latency_ms", 0.0)))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_per_input(self) -> float:
        """Cost in USD per answered input (0.0 when there is none)."""
        return self.cost_usd / self.outputs if self.outputs else 0.0

    def latency(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": self.outputs,
            "llm_calls": self.llm_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "cost_per_input_usd": self.cost_per_input,
            "latency_ms": {
                "p50": self.latency(50),
                "p90": self.latency(90),
                "p99": self.latency(99),
            },
        }


@dataclass(frozen=True)
class FieldAgreement:
    field: str
    compared: int
    agreed: int

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 1.0


@dataclass(frozen=True)
class Verdict:
    """A judge's preference for one differing pair, with its reason.

    ``preference`` is ``not judged`` when the call failed, the reply did not
    fit the schema or the judge's budget was spent (``reason`` says which);
    ``answered`` is ``called`` or ``journal`` (a judged pair judged again).
    """

    preference: Preference
    reason: str
    model: str = ""
    answered: str = "called"

    def to_dict(self) -> dict[str, Any]:
        return {
            "preference": self.preference,
            "reason": self.reason,
            "model": self.model,
            "answered": self.answered,
        }


@dataclass(frozen=True)
class Case:
    """One input whose outputs differ (or that only one side answered)."""

    identity: str
    key: str
    input: Any
    production: Any
    candidate: Any
    fields: tuple[str, ...] = ()
    turn: int | None = None
    production_trace: str = ""
    candidate_trace: str = ""
    verdict: Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "turn": self.turn,
            "input": self.input,
            "production": self.production,
            "candidate": self.candidate,
            "fields": list(self.fields),
            "production_trace": self.production_trace,
            "candidate_trace": self.candidate_trace,
            "verdict": None if self.verdict is None else self.verdict.to_dict(),
        }


Status = Literal["agree", "differ", "only production", "only candidate", "dead letter"]


@dataclass(frozen=True)
class TimelineEntry:
    """One input of a key: what production and the candidate answered, and their trace ids."""

    key: str
    turn: int | None
    offset: tuple[int, int] | None  # (partition, offset) of the input, when known
    input: Any
    status: Status
    production: Any = None
    candidate: Any = None
    fields: tuple[str, ...] = ()
    production_trace: str = ""
    candidate_trace: str = ""


@dataclass
class RunInfo:
    """What a replay knows about itself that its outputs do not say."""

    range: str | None = None
    memory_start: str | None = None
    llm_calls_made: int | None = None
    journal_given: bool = False
    fenced: int = 0
    divergences: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float | None = None

    @staticmethod
    def of_replay(result: ReplayResult) -> RunInfo:
        """From a finished replay (``memory_start`` is read when the result has one)."""
        memory = getattr(result, "memory_start", None)
        describe = getattr(memory, "describe", None)
        return RunInfo(
            range=result.range.describe(),
            memory_start=str(describe() if callable(describe) else memory) if memory else None,
            llm_calls_made=result.llm_calls_made,
            journal_given=result.journal_given,
            fenced=len(result.fenced),
            divergences=[{**d.to_dict(), "description": d.describe()} for d in result.divergences],
            elapsed_s=result.elapsed_s,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "range": self.range,
            "memory_start": self.memory_start,
            "llm_calls_made": self.llm_calls_made,
            "journal_given": self.journal_given,
            "fenced": self.fenced,
            "divergences": self.divergences,
            "elapsed_s": self.elapsed_s,
        }


def _counts(values: Counter[str]) -> dict[str, int]:
    return dict(sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class ComparisonReport:
    """Everything ``compare`` prints and renders; numbers over the matched pairs."""

    production_topic: str
    candidate_topic: str
    join: str
    production_outputs: int
    candidate_outputs: int
    matched: int
    agreed: int
    structured: bool
    fields: list[FieldAgreement]
    differing: list[Case]
    only_production: list[Case]
    only_candidate: list[Case]
    production: SideStats
    candidate: SideStats
    candidate_dead_letters: int = 0
    candidate_shadow: bool = False
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)
    production_versions: Counter[str] = field(default_factory=Counter)
    candidate_versions: Counter[str] = field(default_factory=Counter)
    production_models: Counter[str] = field(default_factory=Counter)
    candidate_models: Counter[str] = field(default_factory=Counter)
    input_range: str = ""
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    timelines: dict[str, list[TimelineEntry]] = field(default_factory=dict)
    run: RunInfo | None = None
    judge_model: str | None = None
    rubric: str | None = None
    memory_start: str | None = None
    """How the candidate's memory started, as its shadow marks record it (``None``: not marked)."""

    @property
    def agreement_rate(self) -> float:
        return self.agreed / self.matched if self.matched else 0.0

    @property
    def verdicts(self) -> dict[str, int]:
        """How many differing pairs the judge gave to each side (empty without a judge)."""
        if self.judge_model is None:
            return {}
        counts = Counter(c.verdict.preference for c in self.differing if c.verdict is not None)
        return {p: counts.get(p, 0) for p in ("production", "candidate", "tie", "not judged")}

    @property
    def deltas(self) -> dict[str, float]:
        """Candidate minus production, over the matched pairs."""
        p, c = self.production, self.candidate
        return {
            "llm_calls": c.llm_calls - p.llm_calls,
            "prompt_tokens": c.prompt_tokens - p.prompt_tokens,
            "completion_tokens": c.completion_tokens - p.completion_tokens,
            "total_tokens": c.total_tokens - p.total_tokens,
            "cost_usd": c.cost_usd - p.cost_usd,
            "cost_per_input_usd": c.cost_per_input - p.cost_per_input,
            "latency_p50_ms": c.latency(50) - p.latency(50),
            "latency_p90_ms": c.latency(90) - p.latency(90),
            "latency_p99_ms": c.latency(99) - p.latency(99),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "production_topic": self.production_topic,
            "candidate_topic": self.candidate_topic,
            "run_id": self.run_id,
            "join": self.join,
            "production_outputs": self.production_outputs,
            "candidate_outputs": self.candidate_outputs,
            "matched": self.matched,
            "agreed": self.agreed,
            "agreement_rate": self.agreement_rate,
            "structured": self.structured,
            "fields": {
                f.field: {"compared": f.compared, "agreed": f.agreed, "rate": f.rate}
                for f in self.fields
            },
            "differing": [c.to_dict() for c in self.differing],
            "only_production": [c.to_dict() for c in self.only_production],
            "only_candidate": [c.to_dict() for c in self.only_candidate],
            "production": self.production.to_dict(),
            "candidate": self.candidate.to_dict(),
            "deltas": self.deltas,
            "candidate_dead_letters": self.candidate_dead_letters,
            "dead_letter_reasons": _counts(self.dead_letter_reasons),
            "versions": {
                "production": _counts(self.production_versions),
                "candidate": _counts(self.candidate_versions),
            },
            "models": {
                "production": _counts(self.production_models),
                "candidate": _counts(self.candidate_models),
            },
            "input_range": self.input_range,
            "memory_start": self.memory_start,
            "run": None if self.run is None else self.run.to_dict(),
            "judge": None
            if self.judge_model is None
            else {"model": self.judge_model, "rubric": self.rubric, "verdicts": self.verdicts},
            "headline": dict(headline(self)),
            "notes": list(self.notes),
        }


def _names(counts: Counter[str]) -> str:
    return ", ".join(f"{name} ({n})" for name, n in _counts(counts).items()) or "-"


def headline(report: ComparisonReport) -> list[tuple[str, str]]:
    """The headline figures, in order: (label, value) as both renderers print them."""
    r = report
    run = r.run or RunInfo()
    rows = [
        ("run id", r.run_id or "-"),
        ("production versions", _names(r.production_versions)),
        ("candidate versions", _names(r.candidate_versions)),
        ("production models", _names(r.production_models)),
        ("candidate models", _names(r.candidate_models)),
        ("range", run.range or r.input_range or "-"),
        ("memory start", _memory_start(r)),
        ("inputs compared", f"{r.matched} ({r.agreed} agree, {len(r.differing)} differ)"),
        ("agreement", f"{r.agreement_rate * 100:.1f}%"),
    ]
    if r.judge_model is not None:
        v = r.verdicts
        rows.append(
            (
                "judge verdicts",
                f"candidate {v['candidate']}, production {v['production']}, tie {v['tie']}, "
                f"not judged {v['not judged']} ({r.judge_model})",
            )
        )
    rows += [
        (
            "cost per input (USD)",
            f"production {r.production.cost_per_input:.6f}, "
            f"candidate {r.candidate.cost_per_input:.6f}",
        ),
        (
            "latency p50 (ms)",
            f"production {r.production.latency(50):.1f}, candidate {r.candidate.latency(50):.1f}",
        ),
        ("candidate dead letters", f"{r.candidate_dead_letters}" + _reasons(r.dead_letter_reasons)),
    ]
    if r.run is not None and r.run.journal_given:
        n = len(r.run.divergences)
        rows.append(("divergences from the record", f"{n} key{'' if n == 1 else 's'}"))
    return rows


def _memory_start(r: ComparisonReport) -> str:
    """The replay's own account, else the candidate's shadow marks, else what is known."""
    if r.run is not None and r.run.memory_start:
        return r.run.memory_start
    if r.memory_start:
        return r.memory_start
    return "empty" if r.run is not None else "not recorded in the candidate's outputs"


def _reasons(reasons: Counter[str]) -> str:
    return f" ({_names(reasons)})" if reasons else ""
