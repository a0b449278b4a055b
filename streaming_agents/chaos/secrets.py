"""Look for secrets where a job leaves traces: files (logs, checkpoints, journal) and records.

Each secret is searched as raw bytes.  A scan only means something where it
can see content, so callers pair it with a *probe*: a string known to be in
that place (e.g. a prompt in the checkpointed memory), reported by
:func:`find_files` like a leak would be.
"""

from __future__ import annotations

import os
import stat
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


def _regular_files(
    roots: Iterable[Path], newer_than: float | None
) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under ``roots`` with their ``lstat`` (symlinks neither followed nor
    listed; errors skipped).  One ``lstat`` per file: a scan of the system temp folder
    walks hundreds of thousands of files that are not the run's."""
    for root in roots:
        try:
            info = root.lstat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            if newer_than is None or info.st_mtime >= newer_than:
                yield root, info
            continue
        folders = [os.fspath(root)] if root.is_dir() else []  # a linked root is walked
        while folders:
            try:
                with os.scandir(folders.pop()) as scan:
                    entries = list(scan)
            except OSError:
                continue  # unreadable, or deleted meanwhile
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        if newer_than is None or info.st_mtime >= newer_than:
                            yield Path(entry.path), info
                except OSError:
                    continue  # deleted meanwhile (a subsumed checkpoint)


def iter_files(roots: Iterable[Path], newer_than: float | None = None) -> Iterator[Path]:
    """Regular files under ``roots`` (symlinks not followed), optionally modified after a time."""
    for path, _info in _regular_files(roots, newer_than):
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
    for path, info in _regular_files(roots, newer_than):
        if info.st_size > MAX_FILE_BYTES:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        scanned += 1
        hits += find_bytes(str(path), data, needles)
    return hits, scanned
