"""What a SQL script's jobs did to their rows, counted for the runner's fail-loudly verdict.

``streaming-agents sql`` fails loudly when most of a statement's records were
dead-lettered or answered ``FAILED`` (see :mod:`streaming_agents.cli.failures`).
The rows of an ``INSERT`` go to the user's sink, which the runner may not be
able to read, and PyFlink gives Python functions no accumulators (and in thread
mode no job parameters), so the counting is done where the rows are made:

* the Kafka JSON table's two steps after the decoder
  (:class:`~streaming_agents.sql.jsonrows.GoodRows` and ``DeadLetters``): each
  record is a row or a dead letter (its reason) -- not the decoder itself, which
  a ``SELECT`` or CTAS runs in two jobs (its rows; its companion's dead letters);
* the agent table (:class:`~streaming_agents.sql.table.RowDecoder`): each row
  ``OK`` or ``FAILED`` (its error);
* ``AI_COMPLETE`` / ``ML_PREDICT`` / ``AI_EMBEDDING``: each call answered, or
  failed (the row gets NULL); ``AI_TOOL_INVOKE``: failed when the model call or
  a tool failed.

Each counting function holds a :class:`Tally` (a folder and the statement the
call is written in) and, on first use in a worker, opens a file of its own in
that folder; each outcome is one line appended (``+`` for a good one, ``-``
and the reason for a failed one) and flushed, so the counts survive a
cancelled job.  The runner sums the files after its jobs end
(:func:`read_tallies`).  Counts are of records *processed*: after a restart
the replayed records are counted again, on both sides of the ratio.  The
folder is local, so the verdict needs workers on this host (the local
mini-cluster); with ``--rest`` no tally is kept.  A file that cannot be
written is skipped with one warning: counting never fails a job.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["AI", "INPUT", "StatementCounts", "Tally", "compact_reason", "read_tallies"]

INPUT = "input"
"""Records of Kafka JSON tables: a row, or a dead letter."""
AI = "ai"
"""Rows of AI functions: answered, or FAILED / NULL."""

_SUFFIX = ".tally"
_MAX_REASON = 200
log = logging.getLogger(__name__)


@dataclass
class Tally:
    """Where one counting function writes: ``directory``, statement ``number`` at ``line``."""

    directory: str
    number: int
    line: int
    kind: str
    _file: IO[str] | None = field(default=None, init=False, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _broken: bool = field(default=False, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("directory", "number", "line", "kind")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def ok(self) -> None:
        """One good outcome."""
        self._write("+\n")

    def failed(self, reason: str) -> None:
        """One failed outcome and why (its first line, shortened)."""
        self._write(f"-{compact_reason(reason)}\n")

    def _write(self, line: str) -> None:
        if self._broken:
            return
        with self._lock:
            try:
                if self._file is None:
                    name = f"s{self.number}-l{self.line}-{self.kind}-{os.getpid()}-"
                    path = Path(self.directory) / f"{name}{uuid.uuid4().hex[:8]}{_SUFFIX}"
                    self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
                self._file.write(line)
            except OSError as exc:
                self._broken = True
                log.warning("SQL tally %s: not counted (%s)", self.directory, exc)


def compact_reason(reason: str) -> str:
    """The first line of ``reason`` without the repeats of wrapped errors, shortened.

    ``X: litellm.X: X: message`` (litellm wraps its errors in themselves) -> ``X: message``.
    """
    first = (reason.strip().splitlines() or ["unknown"])[0]
    parts: list[str] = []
    for part in first.split(": "):
        if part.removeprefix("litellm.") not in parts:
            parts.append(part.removeprefix("litellm."))
    return ": ".join(parts)[:_MAX_REASON] or "unknown"


@dataclass
class StatementCounts:
    """The outcomes counted for one statement."""

    number: int
    line: int
    inputs: int = 0
    ai_rows: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Its events: the input records it read, else (no Kafka JSON table) its AI rows."""
        return self.inputs or self.ai_rows

    def reasons(self) -> list[str]:
        """One reason per failed event (dead letters first), at most :attr:`total`."""
        out = [f"dead letter: {r}" for r, n in self.dead.items() for _ in range(n)]
        out += [f"AI row failed: {r}" for r, n in self.failed.items() for _ in range(n)]
        return out[: self.total]


def read_tallies(directory: str | Path) -> list[StatementCounts]:
    """The counts of every statement that left files in ``directory``, by statement number."""
    found: dict[int, StatementCounts] = {}
    for path in sorted(Path(directory).glob(f"s*{_SUFFIX}")):
        parts = path.name.split("-")
        try:
            number, line, kind = int(parts[0][1:]), int(parts[1][1:]), parts[2]
            text = path.read_text(encoding="utf-8", errors="replace")
        except (ValueError, IndexError, OSError):
            continue
        counts = found.setdefault(number, StatementCounts(number, line))
        for entry in text.splitlines():
            if not entry:
                continue
            if kind == INPUT:
                counts.inputs += 1
            else:
                counts.ai_rows += 1
            if entry.startswith("-"):
                (counts.dead if kind == INPUT else counts.failed)[entry[1:] or "unknown"] += 1
    return [found[n] for n in sorted(found)]
