"""Private files for journals and ledgers: 0700 folders, 0600 files, a per-user default place.

Journals hold prompts and replies, so they are created readable by their owner
only, and by default under the user's state directory
(``$XDG_STATE_HOME/streaming_agents`` or ``~/.local/state/streaming_agents``),
never under a world-shared temp directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_state_dir", "private_dir", "private_file"]


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
