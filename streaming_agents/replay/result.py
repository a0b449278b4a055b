"""The result of a replay: what it read, wrote and paid, and how memory started."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streaming_agents.replay.divergence import Divergence, FencedCall
from streaming_agents.replay.memory_start import MemoryStart
from streaming_agents.replay.ranges import ResolvedRange

__all__ = ["ReplayResult"]


@dataclass
class ReplayResult:
    """What a replay did; ``summary()`` prints it."""

    run_id: str
    agent: str
    version: str
    topic: str
    shadow_topic: str
    range: ResolvedRange
    outputs: int
    dead_letters: int
    llm_calls_made: int
    fenced: list[FencedCall]
    divergences: list[Divergence]
    journal_path: str
    journal_given: bool
    elapsed_s: float
    run_dir: str
    shadow_start: dict[int, int] = field(default_factory=dict)
    memory_start: MemoryStart = field(default_factory=MemoryStart)

    @property
    def expected(self) -> int:
        return self.range.expected

    def summary(self) -> str:
        lines = [
            f"replay {self.run_id}: {self.agent}@{self.version} on {self.range.describe()}",
            f"  -> {self.shadow_topic}: {self.outputs} outputs, {self.dead_letters} dead letters "
            f"in {self.elapsed_s:.1f} s",
            f"  memory start: {self.memory_start.describe()}",
            f"  LLM calls made: {self.llm_calls_made}"
            + (
                " (every other call answered from the production journal)"
                if self.journal_given
                else ""
            ),
            f"  side-effecting tool calls not run: {len(self.fenced)}",
        ]
        for call in self.fenced[:10]:
            where = f"key {call.key!r} turn {call.turn}"
            lines.append(f"    {where}: {call.tool}({call.arguments}) [{call.outcome}]")
        if self.journal_given:
            if self.divergences:
                lines.append(f"  diverged from the record on {len(self.divergences)} keys:")
                for div in self.divergences[:20]:
                    lines.extend("    " + ln for ln in div.describe().splitlines())
            else:
                lines.append("  every request matched the record (deterministic re-run)")
        lines.append(f"  run files: {self.run_dir}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "version": self.version,
            "topic": self.topic,
            "shadow_topic": self.shadow_topic,
            "range": {str(p): list(v) for p, v in self.range.offsets.items()},
            "expected": self.expected,
            "outputs": self.outputs,
            "dead_letters": self.dead_letters,
            "llm_calls_made": self.llm_calls_made,
            "fenced": [c.to_dict() for c in self.fenced],
            "divergences": [d.to_dict() for d in self.divergences],
            "journal": self.journal_path,
            "elapsed_s": self.elapsed_s,
            "memory_start": self.memory_start.to_dict(),
        }
