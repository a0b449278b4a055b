"""Where a re-run's requests left the recorded ones.

A replay answers from the production journal, read where it is (SQLite
file or Kafka topic, never copied or written), and writes its own entries to
a run-private journal.  Every request production's journal can answer is
identical to one production sent (the digest covers agent, key, model,
parameters and the whole request), so only the calls the replay had to pay
for are new; the agent operator adds each to the run's request log with its
key and turn.  For every key, the first new request is where the run
diverged; it is shown beside the request production sent for the same key
and turn (from production's request log), with the first message that
differs.  Later turns
of that key usually diverge too (the conversation differs from then on), so
only the first one per key is reported unless asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streaming_agents.journal.base import RecordedRequest, RequestLog

__all__ = ["Divergence", "FencedCall", "fenced_calls", "find_divergences", "first_difference"]


@dataclass(frozen=True)
class Divergence:
    """The first request of ``key`` (at ``turn``) that the record could not answer."""

    agent: str
    key: str
    turn: int
    event: Any
    where: str
    message_index: int | None
    recorded_message: Any
    new_message: Any
    recorded_request: dict[str, Any] | None
    new_request: dict[str, Any]

    def describe(self) -> str:
        head = f"key {self.key!r} turn {self.turn}"
        if self.recorded_request is None:
            return f"{head}: no request recorded for this key and turn (new key or new turn)"
        if self.where != "messages":
            return f"{head}: {self.where} differ"
        return (
            f"{head}: message {self.message_index} differs\n"
            f"  recorded: {_show(self.recorded_message)}\n"
            f"  new:      {_show(self.new_message)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "key": self.key,
            "turn": self.turn,
            "event": self.event,
            "where": self.where,
            "message_index": self.message_index,
            "recorded_message": self.recorded_message,
            "new_message": self.new_message,
        }


@dataclass(frozen=True)
class FencedCall:
    """A side-effecting tool call a fenced run asked for (and did not run)."""

    key: str
    turn: int
    tool: str
    arguments: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "turn": self.turn,
            "tool": self.tool,
            "arguments": self.arguments,
            "outcome": self.outcome,
        }


def _show(message: Any) -> str:
    text = json.dumps(message, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:299] + "…"


def first_difference(
    recorded: dict[str, Any], new: dict[str, Any]
) -> tuple[str, int | None, Any, Any]:
    """(where, message index, recorded message, new message) of the first difference."""
    rec_msgs, new_msgs = list(recorded.get("messages", ())), list(new.get("messages", ()))
    for i in range(max(len(rec_msgs), len(new_msgs))):
        a = rec_msgs[i] if i < len(rec_msgs) else None
        b = new_msgs[i] if i < len(new_msgs) else None
        if a != b:
            return "messages", i, a, b
    for part in ("response_schema", "tools"):
        if recorded.get(part) != new.get(part):
            return part, None, recorded.get(part), new.get(part)
    return "model or parameters", None, None, None


def _common_prefix(a: dict[str, Any], b: dict[str, Any]) -> int:
    n = 0
    for x, y in zip(a.get("messages", ()), b.get("messages", ()), strict=False):
        if x != y:
            break
        n += 1
    return n


def _event(row: RecordedRequest) -> Any:
    try:
        return json.loads(row.event) if row.event else None
    except ValueError:
        return row.event


def _recorded_by_turn(
    journal: RequestLog, agent: str, upto_seq: int | None
) -> dict[tuple[str, int], list[RecordedRequest]]:
    """Production's requests of ``agent`` by (key, turn), read once."""
    by_turn: dict[tuple[str, int], list[RecordedRequest]] = {}
    for row in journal.recorded_requests(agent=agent, kind="llm", upto_seq=upto_seq):
        by_turn.setdefault((row.key, row.turn), []).append(row)
    return by_turn


def find_divergences(
    journal: RequestLog,
    agent: str,
    since_seq: int,
    *,
    first_per_key: bool = True,
    recorded: RequestLog | None = None,
) -> list[Divergence]:
    """Divergences of the run that added request rows to ``journal`` after ``since_seq``.

    ``recorded`` is production's request log (read-only); without it the rows
    of ``journal`` up to ``since_seq`` are production's (a journal the run
    shares with the record).
    """
    new_rows = journal.recorded_requests(agent=agent, kind="llm", after_seq=since_seq)
    chosen: dict[tuple[str, int], RecordedRequest] = {}
    for row in new_rows:
        chosen.setdefault((row.key, row.turn), row)
    if first_per_key:
        firsts: dict[str, RecordedRequest] = {}
        for (key, _turn), row in sorted(chosen.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            firsts.setdefault(key, row)
        rows = list(firsts.values())
    else:
        rows = list(chosen.values())
    out: list[Divergence] = []
    if not rows:
        return out
    if recorded is None:
        production = _recorded_by_turn(journal, agent, since_seq)
    else:
        production = _recorded_by_turn(recorded, agent, None)
    for row in sorted(rows, key=lambda r: (r.key, r.turn)):
        new = json.loads(row.body)
        recorded_rows = production.get((row.key, row.turn), [])
        if not recorded_rows:
            out.append(
                Divergence(
                    agent, row.key, row.turn, _event(row), "no record", None, None, None, None, new
                )
            )
            continue
        candidates = [json.loads(r.body) for r in recorded_rows]
        best = max(candidates, key=lambda req: _common_prefix(req, new))
        where, index, a, b = first_difference(best, new)
        out.append(Divergence(agent, row.key, row.turn, _event(row), where, index, a, b, best, new))
    return out


def fenced_calls(journal: RequestLog, agent: str, since_seq: int) -> list[FencedCall]:
    """Side-effecting tool calls recorded by a fenced run after ``since_seq``."""
    calls = []
    for row in journal.recorded_requests(agent=agent, kind="tool", after_seq=since_seq):
        body = json.loads(row.body)
        call = body.get("call") or {}
        calls.append(
            FencedCall(
                row.key,
                row.turn,
                str(call.get("name", "?")),
                str(call.get("arguments", "")),
                str(body.get("outcome", "fenced")),
            )
        )
    return calls
