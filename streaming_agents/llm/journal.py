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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from streaming_agents.agent import LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import ConfigError

__all__ = ["Journal", "NullJournal", "RecordedRequest", "SqliteJournal", "request_digest"]


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


@dataclass(frozen=True)
class RecordedRequest:
    """One row of a journal's request record (see :meth:`SqliteJournal.record_request`)."""

    seq: int
    kind: str
    agent: str
    version: str
    key: str
    turn: int
    digest: str
    body: str
    event: str | None
    ts: float


_REQUESTS_DDL = (
    "CREATE TABLE IF NOT EXISTS requests ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, agent TEXT NOT NULL,"
    " version TEXT NOT NULL, key TEXT NOT NULL, turn INTEGER NOT NULL, digest TEXT NOT NULL,"
    " body TEXT NOT NULL, event TEXT, ts REAL NOT NULL,"
    " UNIQUE (kind, agent, key, turn, digest))",
    "CREATE INDEX IF NOT EXISTS requests_by_turn ON requests (agent, key, turn)",
)
_REQUEST_COLUMNS = "seq, kind, agent, version, key, turn, digest, body, event, ts"


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
        self._requests_ready = False

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

    # --- the request record ---------------------------------------------------
    #
    # A second table beside the results: which request each agent sent for
    # which key and turn (and which side-effecting tool calls a fenced run
    # wanted).  The result table answers "what was the reply to this digest";
    # this one answers "what did key K send at turn T", which a replay needs
    # to say where a new version's requests left the recorded ones.

    def _requests_db(self) -> sqlite3.Connection:
        db = self._db()
        if not self._requests_ready:
            for statement in _REQUESTS_DDL:
                db.execute(statement)
            db.commit()
            self._requests_ready = True
        return db

    def record_request(
        self,
        *,
        kind: str,
        agent: str,
        version: str,
        key: str,
        turn: int,
        digest: str,
        body: str,
        event: str | None = None,
    ) -> None:
        """Record what ``agent`` sent for ``key`` at ``turn``.

        ``kind`` is ``llm`` (``body``: the request's canonical JSON) or ``tool``
        (``body``: a side-effecting tool call and what the run did with it).
        The agent operator records every LLM call it pays for (journal hits
        were recorded the first time).  A row is kept once per
        (kind, agent, key, turn, digest).
        """
        with self._lock:
            db = self._requests_db()
            db.execute(
                "INSERT OR IGNORE INTO requests"
                " (kind, agent, version, key, turn, digest, body, event, ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, agent, version, key, int(turn), digest, body, event, time.time()),
            )
            db.commit()

    def recorded_requests(
        self,
        *,
        agent: str | None = None,
        key: str | None = None,
        turn: int | None = None,
        kind: str | None = None,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> list[RecordedRequest]:
        """Rows of the request record, oldest first, filtered by the arguments given."""
        clauses: list[str] = ["seq > ?"]
        params: list[object] = [after_seq]
        for column, value in (("agent", agent), ("key", key), ("turn", turn), ("kind", kind)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if upto_seq is not None:
            clauses.append("seq <= ?")
            params.append(upto_seq)
        sql = f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE {' AND '.join(clauses)} ORDER BY seq"
        with self._lock:
            rows = self._requests_db().execute(sql, params).fetchall()
        return [RecordedRequest(*row) for row in rows]

    def last_request_seq(self) -> int:
        """The sequence number of the newest request row (0 when there is none)."""
        with self._lock:
            row = self._requests_db().execute("SELECT MAX(seq) FROM requests").fetchone()
        return int(row[0] or 0)

    @staticmethod
    def copy(source: str | Path, target: str | Path) -> SqliteJournal:
        """A consistent copy of the journal file ``source`` in the new file ``target``.

        ``source`` is opened read-only (SQLite's online backup), so a journal a
        production job is writing is neither changed nor locked for long.  A
        replay reads and writes the copy.
        """
        src_path, dst_path = Path(source), Path(target)
        if not src_path.is_file():
            raise ConfigError(f"journal {src_path} does not exist")
        if dst_path.exists():
            raise ConfigError(f"will not overwrite {dst_path} with a journal copy")
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            src = sqlite3.connect(f"{src_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                dst = sqlite3.connect(dst_path)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.DatabaseError as exc:
            dst_path.unlink(missing_ok=True)
            raise ConfigError(f"{src_path} is not a readable journal: {exc}") from exc
        return SqliteJournal(dst_path)

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(str(state["path"]))  # type: ignore[misc]
