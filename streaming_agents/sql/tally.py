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

Each counting function holds a :class:`Tally` (the target, and the statement
the call is written in); on first use in a worker it opens a writer of the
backend the target names (:func:`open_writer`, the one factory): a local
folder for the mini-cluster (:mod:`~streaming_agents.sql.tally_files`, one
line per outcome, flushed as written) or, with ``--rest``, a Kafka topic
(:mod:`~streaming_agents.sql.tally_kafka`, sums sent once a second and at the
job's end).  The counting function's ``close()`` calls :meth:`Tally.close`.
The runner sums what the backend holds after its jobs end
(:func:`read_tallies`).  Counts are of records *processed*: after a restart
the replayed records are counted again, on both sides of the ratio.  A
writer that cannot be opened or written is dropped with one warning:
counting never fails a job.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming_agents.sql.tally_base import Counted, Key, TallyWriter

__all__ = [
    "AI",
    "INPUT",
    "StatementCounts",
    "Tally",
    "compact_reason",
    "open_writer",
    "read_tallies",
]

INPUT = "input"
"""Records of Kafka JSON tables: a row, or a dead letter."""
AI = "ai"
"""Rows of AI functions: answered, or FAILED / NULL."""

_MAX_REASON = 200
log = logging.getLogger(__name__)


def open_writer(target: str, key: Key) -> TallyWriter:
    """The backend ``target`` names: ``kafka://...`` a topic, anything else a local folder."""
    if target.startswith("kafka://"):
        from streaming_agents.sql.tally_kafka import KafkaWriter

        return KafkaWriter(target, key)
    from streaming_agents.sql.tally_files import FileWriter

    return FileWriter(target, key)


def _counted(target: str, client: Mapping[str, Any] | None) -> Iterator[Counted]:
    if target.startswith("kafka://"):
        from streaming_agents.sql.tally_kafka import read_counts as read_topic

        return read_topic(target, client or {})
    from streaming_agents.sql.tally_files import read_counts as read_folder

    return read_folder(target)


@dataclass
class Tally:
    """Where one counting function writes: ``target``, statement ``number`` at ``line``."""

    target: str
    number: int
    line: int
    kind: str
    _writer: TallyWriter | None = field(default=None, init=False, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _broken: bool = field(default=False, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("target", "number", "line", "kind")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def ok(self) -> None:
        """One good outcome."""
        self._add(None)

    def failed(self, reason: str) -> None:
        """One failed outcome and why (its first line, shortened)."""
        self._add(compact_reason(reason))

    def close(self) -> None:
        """Make this worker's counts readable by the runner (the function's ``close()``)."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._guarded(writer.close)

    def _add(self, reason: str | None) -> None:
        if self._broken:
            return
        with self._lock:
            if self._writer is None:
                key = Key(self.number, self.line, self.kind)
                self._writer = self._guarded(lambda: open_writer(self.target, key))
            writer = self._writer
            if writer is not None:
                self._guarded(lambda: writer.add(reason))

    def _guarded(self, step: Any) -> Any:
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - counting must never fail a job
            self._broken, self._writer = True, None
            log.warning("SQL tally %s: not counted (%s)", self.target.split("?")[0], exc)
            return None


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


def read_tallies(
    target: str | Path, client: Mapping[str, Any] | None = None
) -> list[StatementCounts]:
    """The counts of every statement the ``target`` holds, by statement number.

    ``client``: the runner's Kafka client settings (security) for a ``kafka://`` target.
    """
    return _summed(_counted(str(target), client))


def _summed(counted: Iterable[Counted]) -> list[StatementCounts]:
    found: dict[int, StatementCounts] = {}
    for c in counted:
        counts = found.setdefault(c.key.number, StatementCounts(c.key.number, c.key.line))
        total = c.ok + sum(c.failed.values())
        if c.key.kind == INPUT:
            counts.inputs += total
            counts.dead.update(c.failed)
        else:
            counts.ai_rows += total
            counts.failed.update(c.failed)
    return [found[n] for n in sorted(found)]
