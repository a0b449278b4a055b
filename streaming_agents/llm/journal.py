"""The LLM journal: results of calls already paid for, keyed by request digest.

After a failure Flink rolls state back to the last completed checkpoint and
replays the input since then, so the agent operator asks the same questions
again.  The journal outlives the failure (it is a file, not Flink state), and
the operator answers repeated calls from it: tokens are paid for once.

Durability: an entry is committed (SQLite WAL) before the result is used, so a
``kill -9`` of the worker never loses a result the operator acted on.  The
journal is an optimisation of cost, not of correctness: a lost entry only
means the call is made again.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from streaming_agents.agent import LLMRequest, LLMResult, ModelSpec

__all__ = ["Journal", "NullJournal", "SqliteJournal", "request_digest"]


def request_digest(agent_name: str, key: str, spec: ModelSpec, request: LLMRequest) -> str:
    """Digest of everything that determines an answer, per agent and key.

    The key is part of it so that two conversations never share answers.
    Secrets are not (``ModelSpec`` only names the environment variable).
    """
    h = hashlib.sha256()
    for part in (
        agent_name,
        key,
        spec.model,
        repr(sorted(spec.params.items())),
        request.canonical(),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class Journal(Protocol):
    """Where LLM results are recorded; called from the operator's event loop thread."""

    def get(self, digest: str) -> LLMResult | None: ...

    def put(self, digest: str, result: LLMResult) -> None: ...

    def close(self) -> None: ...


class NullJournal:
    """No journal: every replayed call is paid again (for benchmarks and tests)."""

    def get(self, digest: str) -> LLMResult | None:
        return None

    def put(self, digest: str, result: LLMResult) -> None:
        return None

    def close(self) -> None:
        return None


class SqliteJournal:
    """A journal in one SQLite file, shared by every subtask on the host.

    WAL mode lets the subtasks' processes write concurrently.  Suitable for a
    local mini-cluster or a single-host cluster; the path must be on a disk
    that survives the TaskManager.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS journal (digest TEXT PRIMARY KEY, result TEXT NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    def get(self, digest: str) -> LLMResult | None:
        with self._lock:
            row = (
                self._db()
                .execute("SELECT result FROM journal WHERE digest = ?", (digest,))
                .fetchone()
            )
        return None if row is None else LLMResult.model_validate_json(row[0])

    def put(self, digest: str, result: LLMResult) -> None:
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR IGNORE INTO journal (digest, result) VALUES (?, ?)",
                (digest, result.model_dump_json()),
            )
            db.commit()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(str(state["path"]))  # type: ignore[misc]
