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

**Metadata and drill-down.**  Versions (``agent@version``) and models
(``usage.model``) are counted per side; the input range is read from the
inputs' Kafka coordinates (``source``); every key gets a timeline of its
inputs, production beside candidate, with both audit trace ids.  How the
candidate's memory started (empty, or production's savepoint) is read from its
shadow marks (``replay.memory_start``, written by the replay or shadow job),
so ``compare`` alone shows it too.  The report's data classes live in
:mod:`streaming_agents.replay.report_data`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from streaming_agents.replay.errors import NoOverlap, SchemaMismatch
from streaming_agents.replay.memory_start import MemoryStart
from streaming_agents.replay.report_data import (
    Case,
    ComparisonReport,
    FieldAgreement,
    SideStats,
    TimelineEntry,
    percentile,
)
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
    "marked_memory_start",
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


Pair = tuple[str, dict[str, Any], dict[str, Any]]


def _pair_up(
    production: list[dict[str, Any]], candidate: list[dict[str, Any]], join: Join
) -> tuple[list[Pair], list[Case], list[Case]]:
    """Matched pairs and the outputs only one side has (see the module doc)."""
    prod_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    cand_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for out in production:
        prod_by[identity_of(out, join)].append(out)
    for out in candidate:
        cand_by[identity_of(out, join)].append(out)
    pairs: list[Pair] = []
    only_p: list[Case] = []
    only_c: list[Case] = []
    for ident in sorted(set(prod_by) | set(cand_by)):
        ps, cs = prod_by.get(ident, []), cand_by.get(ident, [])
        for i in range(max(len(ps), len(cs))):
            if i < len(ps) and i < len(cs):
                pairs.append((ident, ps[i], cs[i]))
            elif i < len(ps):
                only_p.append(_case(ident, ps[i], None))
            else:
                only_c.append(_case(ident, None, cs[i]))
    return pairs, only_p, only_c


def _differing_fields(po: Any, co: Any) -> tuple[str, ...] | None:
    """Top-level fields that differ between two objects (``None`` unless both are objects)."""
    if not (isinstance(po, dict) and isinstance(co, dict)):
        return None
    return tuple(
        name
        for name in sorted(set(po) | set(co))
        if not (name in po and name in co and canonical(po[name]) == canonical(co[name]))
    )


def _version(output: dict[str, Any]) -> str:
    return f"{output.get('agent', '?')}@{output.get('version', '?')}"


def _model(output: dict[str, Any]) -> str | None:
    usage = output.get("usage")
    model = usage.get("model") if isinstance(usage, dict) else None
    return str(model) if model else None


def marked_memory_start(outputs: list[dict[str, Any]]) -> str | None:
    """How the outputs' run started its memory, from their shadow marks (``None``: unmarked).

    One description when every marked output agrees, else each with its count.
    """
    starts: Counter[str] = Counter()
    for out in outputs:
        mark = out.get("replay")
        start = MemoryStart.from_dict(mark.get("memory_start")) if isinstance(mark, dict) else None
        if start is not None:
            starts[start.describe()] += 1
    if len(starts) <= 1:
        return next(iter(starts), None)
    return "; ".join(f"{text} ({n} outputs)" for text, n in starts.most_common())


def _coordinates(output: dict[str, Any]) -> tuple[int, int, int | None] | None:
    """(partition, offset, timestamp ms) of the input an output answers, when recorded."""
    source = output.get("source")
    if not isinstance(source, dict):
        return None
    try:
        stamp = source.get("timestamp_ms")
        return (
            int(source["partition"]),
            int(source["offset"]),
            None if stamp is None else int(stamp),
        )
    except (KeyError, TypeError, ValueError):
        return None


def input_range(outputs: list[dict[str, Any]]) -> str:
    """The inputs' offsets per partition and their time span, from their coordinates."""
    from datetime import UTC, datetime

    spans: dict[int, tuple[int, int]] = {}
    stamps: list[int] = []
    for out in outputs:
        where = _coordinates(out)
        if where is None:
            continue
        part, offset, stamp = where
        low, high = spans.get(part, (offset, offset))
        spans[part] = (min(low, offset), max(high, offset))
        if stamp is not None:
            stamps.append(stamp)
    if not spans:
        return ""
    parts = ", ".join(f"p{p}:[{a},{b}]" for p, (a, b) in sorted(spans.items()))
    if stamps:

        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")

        parts += f"; {iso(min(stamps))} .. {iso(max(stamps))}"
    return f"offsets {parts}"


def _entry(case: Case, status: Any, out: dict[str, Any]) -> TimelineEntry:
    where = _coordinates(out)
    return TimelineEntry(
        key=case.key,
        turn=case.turn,
        offset=None if where is None else (where[0], where[1]),
        input=case.input,
        status=status,
        production=case.production,
        candidate=case.candidate,
        fields=case.fields,
        production_trace=case.production_trace,
        candidate_trace=case.candidate_trace,
    )


def _timelines(
    entries: list[TimelineEntry], dead: list[dict[str, Any]]
) -> dict[str, list[TimelineEntry]]:
    """Per key, its inputs in (turn, partition, offset) order; dead letters at the end."""
    by_key: dict[str, list[TimelineEntry]] = defaultdict(list)
    for entry in entries:
        by_key[entry.key].append(entry)
    for doc in dead:  # beside production's answer to the same input when there is one
        key = str(doc.get("key"))
        where = _coordinates(doc)
        rows = by_key[key]
        same = next(
            (i for i, e in enumerate(rows) if e.status == "only production"
             and canonical(e.input) == canonical(doc.get("payload"))),
            None,
        )  # fmt: skip
        entry = TimelineEntry(
            key=key,
            turn=None,
            offset=None if where is None else (where[0], where[1]),
            input=doc.get("payload"),
            status="dead letter",
            candidate={"dead_letter": str(doc.get("reason") or "?"), "error": doc.get("error")},
        )
        if same is None:
            rows.append(entry)
        else:
            known = rows[same]
            rows[same] = replace(entry, turn=known.turn, production=known.production,
                                 production_trace=known.production_trace)  # fmt: skip

    def order(e: TimelineEntry) -> tuple[int, int, int, int]:
        turn = e.turn if e.turn is not None else 1 << 30
        part, offset = e.offset if e.offset is not None else (1 << 30, 1 << 30)
        return (turn, part, offset, e.status == "dead letter")

    return {key: sorted(rows, key=order) for key, rows in sorted(by_key.items())}


@dataclass
class _Scores:
    """What the matched pairs add up to."""

    production: SideStats = field(default_factory=SideStats)
    candidate: SideStats = field(default_factory=SideStats)
    compared: Counter[str] = field(default_factory=Counter)
    agreed_fields: Counter[str] = field(default_factory=Counter)
    agreed: int = 0
    differing: list[Case] = field(default_factory=list)
    entries: list[TimelineEntry] = field(default_factory=list)

    def add(self, ident: str, p: dict[str, Any], c: dict[str, Any]) -> None:
        self.production.add(p)
        self.candidate.add(c)
        po, co = p.get("output"), c.get("output")
        diff = _differing_fields(po, co)
        if diff is not None and isinstance(po, dict) and isinstance(co, dict):
            for name in set(po) | set(co):
                self.compared[name] += 1
                self.agreed_fields[name] += name not in diff
        case = _case(ident, p, c, diff or ())
        same = canonical(po) == canonical(co)
        self.agreed += same
        if not same:
            self.differing.append(case)
        self.entries.append(_entry(case, "agree" if same else "differ", c))


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
    pairs, only_p, only_c = _pair_up(production, candidate, join)
    if production and candidate and not pairs:
        raise NoOverlap(
            f"{production_topic} and {candidate_topic} share no input (join {join!r}): "
            "different topics, keys or time ranges?"
        )
    structured = bool(pairs) and all(
        isinstance(p.get("output"), dict) and isinstance(c.get("output"), dict) for _, p, c in pairs
    )
    scores = _Scores()
    for ident, p, c in pairs:
        scores.add(ident, p, c)
    entries = scores.entries + [_entry(x, "only production", {}) for x in only_p]
    entries += [_entry(x, "only candidate", {}) for x in only_c]
    notes: list[str] = []
    if pairs and not structured and any(isinstance(p.get("output"), dict) for _, p, _c in pairs):
        notes.append("outputs are only partly structured: per-field agreement covers object pairs")
    return ComparisonReport(
        production_topic=production_topic, candidate_topic=candidate_topic, join=join,
        production_outputs=len(production), candidate_outputs=len(candidate),
        matched=len(pairs), agreed=scores.agreed, structured=structured,
        fields=[FieldAgreement(name, scores.compared[name], scores.agreed_fields[name])
                for name in sorted(scores.compared)],
        differing=scores.differing, only_production=only_p, only_candidate=only_c,
        production=scores.production, candidate=scores.candidate,
        candidate_dead_letters=len(dead),
        candidate_shadow=bool(candidate) and all(o.get("shadow") is True for o in candidate),
        run_id=run_id, notes=notes,
        production_versions=Counter(_version(o) for o in production),
        candidate_versions=Counter(_version(o) for o in candidate + dead),
        production_models=Counter(m for m in map(_model, production) if m),
        candidate_models=Counter(m for m in map(_model, candidate) if m),
        input_range=input_range(candidate + dead),
        dead_letter_reasons=Counter(str(d.get("reason") or "?") for d in dead),
        timelines=_timelines(entries, dead),
        memory_start=marked_memory_start(candidate + dead),
    )  # fmt: skip


def _case(
    ident: str,
    prod: dict[str, Any] | None,
    cand: dict[str, Any] | None,
    fields: tuple[str, ...] = (),
) -> Case:
    out = cand if cand is not None else prod
    assert out is not None
    turn = out.get("turn")
    return Case(
        identity=ident,
        key=str(out.get("key")),
        input=out.get("input"),
        production=None if prod is None else prod.get("output"),
        candidate=None if cand is None else cand.get("output"),
        fields=fields,
        turn=turn if isinstance(turn, int) else None,
        production_trace=str((prod or {}).get("trace_id") or ""),
        candidate_trace=str((cand or {}).get("trace_id") or ""),
    )


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
