"""What the SQL tally's backends share: a counting function's key, its counts, the writer protocol.

Backends (one module each, chosen by :func:`streaming_agents.sql.tally.open_writer`
from the tally's target): :mod:`~streaming_agents.sql.tally_files` (a local
folder, for the mini-cluster) and :mod:`~streaming_agents.sql.tally_kafka` (a
topic, for ``--rest`` clusters whose workers are on other hosts).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Counted", "Key", "TallyWriter"]


@dataclass(frozen=True)
class Key:
    """Whose outcomes: statement ``number`` at ``line``, of ``kind`` (input or ai)."""

    number: int
    line: int
    kind: str


@dataclass
class Counted:
    """Outcomes of one key as a backend read them: good ones, failed ones by reason."""

    key: Key
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)


class TallyWriter(Protocol):
    """Where one counting function's outcomes go, in one worker process."""

    def add(self, reason: str | None) -> None:
        """One outcome: good (``None``) or failed with ``reason`` (one short line)."""

    def close(self) -> None:
        """Make every outcome added so far readable by the runner (called at the job's end)."""
