"""Look for secrets where a job leaves traces: files (logs, checkpoints, journal) and records.

Each secret is searched as raw bytes.  A scan only means something where it
can see content, so callers pair it with a *probe*: a string known to be in
that place (e.g. a prompt in the checkpointed memory), reported by
:func:`find_files` like a leak would be.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Hit", "find_bytes", "find_files", "iter_files"]

MAX_FILE_BYTES = 64 << 20


@dataclass(frozen=True)
class Hit:
    """``name`` (which secret or probe) found in ``where`` (a file path or a label)."""

    name: str
    where: str


def iter_files(roots: Iterable[Path], newer_than: float | None = None) -> Iterator[Path]:
    """Regular files under ``roots`` (symlinks not followed), optionally modified after a time."""
    for root in roots:
        if root.is_file() and not root.is_symlink():
            candidates: Iterable[Path] = [root]
        elif root.is_dir():
            candidates = (
                Path(folder) / name
                for folder, _dirs, names in os.walk(root, followlinks=False)
                for name in names
            )
        else:
            continue
        for path in candidates:
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                if newer_than is not None and path.stat().st_mtime < newer_than:
                    continue
            except OSError:
                continue  # deleted meanwhile (a subsumed checkpoint)
            yield path


def find_bytes(where: str, data: bytes, needles: Mapping[str, str]) -> list[Hit]:
    """Which of ``needles`` (name -> text) occur in ``data``."""
    return [Hit(name, where) for name, text in needles.items() if text.encode() in data]


def find_files(
    roots: Iterable[Path], needles: Mapping[str, str], newer_than: float | None = None
) -> tuple[list[Hit], int]:
    """Hits in every readable file under ``roots``; also returns how many files were read."""
    hits: list[Hit] = []
    scanned = 0
    for path in iter_files(roots, newer_than):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        scanned += 1
        hits += find_bytes(str(path), data, needles)
    return hits, scanned
