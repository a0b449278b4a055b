"""Compare a candidate's outputs with production's, input by input.

**Join.**  Outputs are paired by the identity of the input they answer:

* ``id`` -- the input event's ``id`` field;
* ``input`` -- the key plus the input event's canonical JSON (sorted keys);
* ``auto`` (default) -- ``id`` for events that have one, else ``input``.

When one input has several outputs (a reducer emitting more than one, or the
same event twice in the history) they are paired in order.  Outputs only one
side has are counted and listed, never compared.

**Agreement.**  A pair agrees when both ``output`` values are equal as JSON.
When outputs are objects (structured output) each top-level field is also
compared on its own: per-field agreement is the share of pairs in which that
field is equal (a field missing on one side disagrees).

**Cost and latency** come from each output's ``usage`` (summed over its LLM
calls), over the matched pairs only, so both sides answer the same inputs.
Latency percentiles are linear interpolations of ``usage.latency_ms``.  A
replay answered from the journal reports the recorded figures.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from streaming_agents.replay.errors import NoOverlap, SchemaMismatch
from streaming_agents.replay.topics import TopicRecord, read_topic

if TYPE_CHECKING:
    from streaming_agents.connectors.security import KafkaSecurity

__all__ = [
    "Case",
    "ComparisonReport",
    "FieldAgreement",
    "Join",
    "SideStats",
    "compare_outputs",
    "compare_topics",
    "identity_of",
    "parse_outputs",
    "percentile",
]

Join = Literal["auto", "id", "input"]
_REQUIRED = ("key", "input", "output")


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def identity_of(output: dict[str, Any], join: Join = "auto") -> str:
    """The identity of the input an output answers (see the module doc)."""
    event = output.get("input")
    if join in ("auto", "id") and isinstance(event, dict) and "id" in event:
        return f"id:{canonical(event['id'])}"
    if join == "id":
        raise SchemaMismatch(
            f"--join id: the input of key {output.get('key')!r} has no 'id' field: {event!r:.200}"
        )
    return f"input:{output.get('key')}\x1f{canonical(event)}"


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
class Case:
    """One input whose outputs differ (or that only one side answered)."""

    identity: str
    key: str
    input: Any
    production: Any
    candidate: Any
    fields: tuple[str, ...] = ()


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

    @property
    def agreement_rate(self) -> float:
        return self.agreed / self.matched if self.matched else 0.0

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
            "latency_p50_ms": c.latency(50) - p.latency(50),
            "latency_p90_ms": c.latency(90) - p.latency(90),
            "latency_p99_ms": c.latency(99) - p.latency(99),
        }

    def to_dict(self) -> dict[str, Any]:
        def case(c: Case) -> dict[str, Any]:
            return {
                "key": c.key,
                "input": c.input,
                "production": c.production,
                "candidate": c.candidate,
                "fields": list(c.fields),
            }

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
            "differing": [case(c) for c in self.differing],
            "only_production": [case(c) for c in self.only_production],
            "only_candidate": [case(c) for c in self.only_candidate],
            "production": self.production.to_dict(),
            "candidate": self.candidate.to_dict(),
            "deltas": self.deltas,
            "candidate_dead_letters": self.candidate_dead_letters,
            "notes": list(self.notes),
        }


def parse_outputs(records: list[TopicRecord], topic: str) -> list[dict[str, Any]]:
    """Agent output envelopes of ``records`` (dead-letter records included, marked).

    Raises :class:`SchemaMismatch` at the first record that is not an output.
    """
    outputs: list[dict[str, Any]] = []
    for record in records:
        try:
            doc = json.loads(record.value or b"")
        except ValueError:
            doc = None
        if isinstance(doc, dict) and doc.get("dead_letter") is True:
            outputs.append(doc)
            continue
        if not isinstance(doc, dict) or any(name not in doc for name in _REQUIRED):
            shown = (record.value or b"")[:200].decode("utf-8", "replace")
            raise SchemaMismatch(
                f"{topic} partition {record.partition} offset {record.offset} is not an agent "
                f"output (needs fields {', '.join(_REQUIRED)}): {shown!r}"
            )
        outputs.append(doc)
    return outputs


def compare_outputs(
    production: list[dict[str, Any]],
    candidate: list[dict[str, Any]],
    *,
    join: Join = "auto",
    production_topic: str = "production",
    candidate_topic: str = "candidate",
    run_id: str | None = None,
) -> ComparisonReport:
    """Join and compare two lists of output envelopes (see the module doc)."""
    dead = [o for o in candidate if o.get("dead_letter") is True]
    candidate = [o for o in candidate if o.get("dead_letter") is not True]
    production = [o for o in production if o.get("dead_letter") is not True]
    prod_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    cand_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for out in production:
        prod_by[identity_of(out, join)].append(out)
    for out in candidate:
        cand_by[identity_of(out, join)].append(out)

    pairs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    only_p: list[Case] = []
    only_c: list[Case] = []
    for ident in sorted(set(prod_by) | set(cand_by)):
        ps, cs = prod_by.get(ident, []), cand_by.get(ident, [])
        for i in range(max(len(ps), len(cs))):
            if i < len(ps) and i < len(cs):
                pairs.append((ident, ps[i], cs[i]))
            elif i < len(ps):
                only_p.append(_case(ident, ps[i], ps[i].get("output"), None))
            else:
                only_c.append(_case(ident, cs[i], None, cs[i].get("output")))
    if production and candidate and not pairs:
        raise NoOverlap(
            f"{production_topic} and {candidate_topic} share no input (join {join!r}): "
            "different topics, keys or time ranges?"
        )

    structured = bool(pairs) and all(
        isinstance(p.get("output"), dict) and isinstance(c.get("output"), dict) for _, p, c in pairs
    )
    prod_stats, cand_stats = SideStats(), SideStats()
    field_compared: dict[str, int] = defaultdict(int)
    field_agreed: dict[str, int] = defaultdict(int)
    agreed = 0
    differing: list[Case] = []
    for ident, p, c in pairs:
        prod_stats.add(p)
        cand_stats.add(c)
        po, co = p.get("output"), c.get("output")
        fields: tuple[str, ...] = ()
        if isinstance(po, dict) and isinstance(co, dict):
            names = sorted(set(po) | set(co))
            diff = []
            for name in names:
                field_compared[name] += 1
                if name in po and name in co and canonical(po[name]) == canonical(co[name]):
                    field_agreed[name] += 1
                else:
                    diff.append(name)
            fields = tuple(diff)
        if canonical(po) == canonical(co):
            agreed += 1
        else:
            differing.append(_case(ident, p, po, co, fields))

    notes: list[str] = []
    if pairs and not structured and any(isinstance(p.get("output"), dict) for _, p, _c in pairs):
        notes.append("outputs are only partly structured: per-field agreement covers object pairs")
    return ComparisonReport(
        production_topic=production_topic,
        candidate_topic=candidate_topic,
        join=join,
        production_outputs=len(production),
        candidate_outputs=len(candidate),
        matched=len(pairs),
        agreed=agreed,
        structured=structured,
        fields=[
            FieldAgreement(name, field_compared[name], field_agreed[name])
            for name in sorted(field_compared)
        ],
        differing=differing,
        only_production=only_p,
        only_candidate=only_c,
        production=prod_stats,
        candidate=cand_stats,
        candidate_dead_letters=len(dead),
        candidate_shadow=bool(candidate) and all(o.get("shadow") is True for o in candidate),
        run_id=run_id,
        notes=notes,
    )


def _case(
    ident: str, out: dict[str, Any], production: Any, candidate: Any, fields: tuple[str, ...] = ()
) -> Case:
    return Case(ident, str(out.get("key")), out.get("input"), production, candidate, fields)


def _run_of(output: dict[str, Any]) -> str | None:
    replay = output.get("replay")
    return str(replay.get("run")) if isinstance(replay, dict) and replay.get("run") else None


def compare_topics(
    bootstrap: str,
    production_topic: str,
    candidate_topic: str,
    *,
    join: Join = "auto",
    run_id: str | None = None,
    timeout_s: float = 120.0,
    security: KafkaSecurity | None = None,
) -> ComparisonReport:
    """Read both topics (``read_committed``, no consumer group) and compare them.

    A shadow topic written by several replays holds several runs; ``run_id``
    picks one, else the run of the topic's last record is compared.  ``security``
    is the Kafka client-security setting of both readers.
    """
    prod = parse_outputs(
        read_topic(bootstrap, production_topic, timeout_s=timeout_s, security=security),
        production_topic,
    )
    cand = parse_outputs(
        read_topic(bootstrap, candidate_topic, timeout_s=timeout_s, security=security),
        candidate_topic,
    )
    notes: list[str] = []
    runs = [r for r in (_run_of(o) for o in cand) if r is not None]
    if run_id is None and runs and len(set(runs)) > 1:
        run_id = runs[-1]
        notes.append(f"{candidate_topic} holds {len(set(runs))} runs; comparing the last: {run_id}")
    if run_id is not None:
        cand = [o for o in cand if _run_of(o) == run_id]
        if not cand:
            raise SchemaMismatch(f"{candidate_topic} has no outputs of run {run_id!r}")
    elif runs:
        run_id = runs[-1]
    if not prod:
        raise NoOverlap(f"{production_topic} has no outputs to compare")
    if not cand:
        raise NoOverlap(f"{candidate_topic} has no outputs to compare")
    report = compare_outputs(
        prod,
        cand,
        join=join,
        production_topic=production_topic,
        candidate_topic=candidate_topic,
        run_id=run_id,
    )
    report.notes[:0] = notes
    return report
