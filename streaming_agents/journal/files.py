"""Private files for journals and ledgers: 0700 folders, 0600 files, a per-user default place.

Journals hold prompts and replies, so they are created readable by their owner
only, and by default under the user's state directory
(``$XDG_STATE_HOME/streaming_agents`` or ``~/.local/state/streaming_agents``),
never under a world-shared temp directory.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Literal

__all__ = ["connect_shared", "default_state_dir", "private_dir", "private_file"]


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/streaming_agents`` or ``~/.local/state/streaming_agents``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "streaming_agents"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; a folder it creates is 0700."""
    if not path.is_dir():
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite's -wal/-shm copy the mode)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return path
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def connect_shared(
    path: Path,
    setup: Callable[[sqlite3.Connection], None],
    *,
    isolation_level: Literal["DEFERRED"] | None = "DEFERRED",
) -> sqlite3.Connection:
    """Open the SQLite file every process of the host shares, in WAL mode, set up once.

    Switching a file to WAL needs it to itself, and SQLite answers "database is
    locked" at once (its busy timeout does not apply) when another process holds
    it then; a job's call workers all open the host's file at the same moment.
    So opening takes turns on an advisory lock beside the file (``<name>.lock``,
    0600): the WAL switch and ``setup`` (create or upgrade the tables) run in one
    process at a time.  Afterwards readers and writers share the file normally.
    """
    private_file(path)
    lock = private_file(path.with_name(path.name + ".lock"))
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        conn = sqlite3.connect(
            str(path), timeout=30, check_same_thread=False, isolation_level=isolation_level
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            setup(conn)
        except sqlite3.Error:
            conn.close()
            raise
    finally:
        os.close(fd)  # closing the descriptor releases the lock
    return conn
