"""The SQL tally in a local folder: the mini-cluster's workers share the runner's disk.

Each counting function, on first use in a worker process, opens a file of its
own in the folder (named by statement number, line, kind, pid and a random
part) and appends one line per outcome: ``+`` for a good one, ``-`` and the
reason for a failed one.  Lines are flushed as written, so the counts survive
a cancelled job.  :func:`read_counts` sums every file of the folder.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from streaming_agents.sql.tally_base import Counted, Key

__all__ = ["FileWriter", "read_counts"]

_SUFFIX = ".tally"


class FileWriter:
    """Appends one line per outcome to a file of this process in ``directory``."""

    def __init__(self, directory: str, key: Key) -> None:
        name = f"s{key.number}-l{key.line}-{key.kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._file: IO[str] = open(  # noqa: SIM115 - kept open until close()
            Path(directory) / f"{name}{_SUFFIX}", "a", encoding="utf-8", buffering=1
        )

    def add(self, reason: str | None) -> None:
        self._file.write("+\n" if reason is None else f"-{reason}\n")

    def close(self) -> None:
        self._file.close()


def read_counts(directory: str | Path) -> Iterator[Counted]:
    """What every file in ``directory`` counted (files that cannot be read are skipped)."""
    for path in sorted(Path(directory).glob(f"s*{_SUFFIX}")):
        parts = path.name.split("-")
        try:
            key = Key(int(parts[0][1:]), int(parts[1][1:]), parts[2])
            text = path.read_text(encoding="utf-8", errors="replace")
        except (ValueError, IndexError, OSError):
            continue
        entries = [e for e in text.splitlines() if e]
        failed = Counter(e[1:] or "unknown" for e in entries if e.startswith("-"))
        yield Counted(key, len(entries) - sum(failed.values()), failed)
