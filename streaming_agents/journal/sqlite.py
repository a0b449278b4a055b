"""The SQLite journal: the embedded backend for a local mini-cluster or one host.

One file, shared by every subtask on the host (WAL mode lets their processes
write concurrently).  It holds both roles: ``results`` (the result cache,
keyed by scope and request digest) and ``requests`` (the request log replays
read).  The file is created 0600 in a 0700 folder.  Entries older than
``retention_s`` are pruned when the file is opened and every
``_PRUNE_EVERY`` appends.

``read_only`` (a replay or time travel reading a production journal) opens
an existing file with SQLite's ``mode=ro``: nothing is created, pruned or
written, and a missing file is a configuration error.

Durability: an entry is committed before :meth:`append` returns, so a
``kill -9`` of the worker never loses a result the operator acted on.  The
file is only as shared as its disk: on a cluster whose TaskManagers each see
their own filesystem, a subtask that takes over keys on another host does not
see this host's entries (use the Kafka journal there).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from streaming_agents.agent import LLMResult
from streaming_agents.errors import ConfigError
from streaming_agents.journal.base import ANY_VERSION, JournalScope, RecordedRequest
from streaming_agents.journal.files import connect_shared, private_file

__all__ = ["DEFAULT_RETENTION_S", "SqliteJournal"]

DEFAULT_RETENTION_S = 7 * 24 * 3600.0
_PRUNE_EVERY = 1000

_DDL = (
    "CREATE TABLE IF NOT EXISTS results (scope TEXT NOT NULL, digest TEXT NOT NULL,"
    " result TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (digest, scope))",
    "CREATE INDEX IF NOT EXISTS results_by_ts ON results (ts)",
    "CREATE TABLE IF NOT EXISTS requests ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, agent TEXT NOT NULL,"
    " version TEXT NOT NULL, key TEXT NOT NULL, turn INTEGER NOT NULL, digest TEXT NOT NULL,"
    " body TEXT NOT NULL, event TEXT, ts REAL NOT NULL, scope TEXT NOT NULL DEFAULT '',"
    " UNIQUE (kind, agent, key, turn, digest))",
    "CREATE INDEX IF NOT EXISTS requests_by_turn ON requests (agent, key, turn)",
)
_REQUEST_COLUMNS = "seq, kind, agent, version, key, turn, digest, body, event, ts, scope"


def _adopt_legacy_table(conn: sqlite3.Connection) -> None:
    """Move a pre-scope ``journal`` table's entries into ``results`` (unscoped)."""
    found = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
    ).fetchone()
    if found is not None:
        conn.execute(
            "INSERT OR IGNORE INTO results (scope, digest, result, ts)"
            " SELECT '', digest, result, ? FROM journal",
            (time.time(),),
        )
        conn.execute("DROP TABLE journal")


def _add_request_scope(conn: sqlite3.Connection) -> None:
    """Give a request log written before rows had a scope its ``scope`` column ('')."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    if "scope" not in columns:
        conn.execute("ALTER TABLE requests ADD COLUMN scope TEXT NOT NULL DEFAULT ''")


def _create_schema(conn: sqlite3.Connection) -> None:
    """Create or upgrade the tables in one write transaction (see ``connect_shared``)."""
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL:
            conn.execute(statement)
        _adopt_legacy_table(conn)
        _add_request_scope(conn)
    except sqlite3.Error:
        conn.rollback()
        raise
    conn.commit()


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing journal file (``ConfigError`` otherwise)."""
    if not path.is_file():
        raise ConfigError(f"journal {path} does not exist")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30, check_same_thread=False
        )
        conn.execute("SELECT 1 FROM results LIMIT 1").fetchall()
        conn.execute("SELECT 1 FROM requests LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a readable journal: {exc}") from exc
    return conn


class SqliteJournal:
    """A journal in one SQLite file (results and request log).

    ``scope``: entries are written under it and only its entries answer
    lookups; ``None`` answers from every scope (a replay of a production
    journal).  ``retention_s``: entries older than this are pruned.
    ``read_only``: open an existing file for reading only (see the module doc).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        scope: JournalScope | None = None,
        retention_s: float = DEFAULT_RETENTION_S,
        read_only: bool = False,
    ) -> None:
        if retention_s <= 0:
            raise ConfigError(f"journal retention must be positive, got {retention_s}")
        self.path = str(path)
        self.scope = scope
        self.retention_s = retention_s
        self.read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._appends = 0

    @property
    def _scope_label(self) -> str:
        return "" if self.scope is None else self.scope.label()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None and self.read_only:
            self._conn = _open_read_only(Path(self.path))
        if self._conn is None:
            conn = connect_shared(Path(self.path), _create_schema)
            self._conn = conn
            self._prune(conn)
        return self._conn

    def _prune(self, conn: sqlite3.Connection) -> None:
        cutoff = time.time() - self.retention_s
        conn.execute("DELETE FROM results WHERE ts < ?", (cutoff,))
        conn.execute("DELETE FROM requests WHERE ts < ?", (cutoff,))
        conn.commit()

    def prune(self) -> None:
        """Delete entries older than the retention now (a read-only journal: nothing)."""
        if self.read_only:
            return
        with self._lock:
            self._prune(self._db())

    # --- the result cache -------------------------------------------------------

    def get(self, digest: str) -> LLMResult | None:
        """The recorded result for ``digest`` in this journal's scope (synchronous)."""
        params: tuple[str | int, ...] = (digest,)
        sql = "SELECT result FROM results WHERE digest = ? LIMIT 1"
        if self.scope is not None and self.scope.version == ANY_VERSION:
            prefix = self.scope.match_prefix()
            sql = "SELECT result FROM results WHERE digest = ? AND substr(scope, 1, ?) = ? LIMIT 1"
            params = (digest, len(prefix), prefix)
        elif self.scope is not None:
            sql = "SELECT result FROM results WHERE digest = ? AND scope = ?"
            params = (digest, self._scope_label)
        with self._lock:
            row = self._db().execute(sql, params).fetchone()
        return None if row is None else LLMResult.model_validate_json(row[0])

    def put(self, digest: str, result: LLMResult) -> None:
        """Record ``result`` for ``digest``, committed before returning (synchronous)."""
        self._writable()
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR IGNORE INTO results (scope, digest, result, ts) VALUES (?, ?, ?, ?)",
                (self._scope_label, digest, result.model_dump_json(), time.time()),
            )
            db.commit()
            self._appends += 1
            if self._appends % _PRUNE_EVERY == 0:
                self._prune(db)

    async def lookup(self, key: str, digest: str) -> LLMResult | None:
        # A local indexed read: cheaper than handing it to a thread.
        return self.get(digest)

    async def append(self, key: str, digest: str, result: LLMResult) -> None:
        self.put(digest, result)

    def _writable(self) -> None:
        if self.read_only:
            raise ConfigError(f"journal {self.path} is open read-only (a production journal)")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- the request log --------------------------------------------------------
    #
    # The result table answers "what was the reply to this digest"; this one
    # answers "what did key K send at turn T", which a replay needs to say
    # where a new version's requests left the recorded ones.

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
        A row is kept once per (kind, agent, key, turn, digest).
        """
        self._writable()
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT OR IGNORE INTO requests"
                " (kind, agent, version, key, turn, digest, body, event, ts, scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    agent,
                    version,
                    key,
                    int(turn),
                    digest,
                    body,
                    event,
                    time.time(),
                    self._scope_label,
                ),
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
        scoped = self._has_request_scope()  # a read-only file older than row scopes has none
        if self.scope is not None and scoped:
            prefix = self.scope.match_prefix().rstrip("\0")
            clauses.append("substr(scope, 1, ?) = ?")
            params.extend((len(prefix), prefix))
            if self.scope.version != ANY_VERSION:
                clauses.append("length(scope) = ?")
                params.append(len(prefix))
        columns = _REQUEST_COLUMNS if scoped else _REQUEST_COLUMNS.removesuffix(", scope") + ", ''"
        sql = f"SELECT {columns} FROM requests WHERE {' AND '.join(clauses)} ORDER BY seq"
        with self._lock:
            rows = self._db().execute(sql, params).fetchall()
        return [RecordedRequest(*row) for row in rows]

    def _has_request_scope(self) -> bool:
        """Whether the request log has its scope column (a read-only old file may not)."""
        with self._lock:
            rows = self._db().execute("PRAGMA table_info(requests)").fetchall()
        return any(row[1] == "scope" for row in rows)

    def last_request_seq(self) -> int:
        """The sequence number of the newest request row (0 when there is none)."""
        with self._lock:
            row = self._db().execute("SELECT MAX(seq) FROM requests").fetchone()
        return int(row[0] or 0)

    @staticmethod
    def copy(source: str | Path, target: str | Path) -> SqliteJournal:
        """A consistent copy of the journal file ``source`` in the new file ``target``.

        ``source`` is opened read-only (SQLite's online backup), so a journal a
        production job is writing is neither changed nor locked for long.  A
        replay reads and writes the copy (unscoped: it answers from every scope).
        """
        src_path, dst_path = Path(source), Path(target)
        if not src_path.is_file():
            raise ConfigError(f"journal {src_path} does not exist")
        if dst_path.exists():
            raise ConfigError(f"will not overwrite {dst_path} with a journal copy")
        private_file(dst_path)
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
        return {"path": self.path, "scope": self.scope, "retention_s": self.retention_s,
                "read_only": self.read_only}  # fmt: skip

    def __setstate__(self, state: dict[str, object]) -> None:
        scope = state.get("scope")
        retention = state.get("retention_s", DEFAULT_RETENTION_S)
        self.__init__(  # type: ignore[misc]
            str(state["path"]),
            scope=scope if isinstance(scope, JournalScope) else None,
            retention_s=float(retention) if isinstance(retention, (int, float)) else 0.0,
            read_only=state.get("read_only") is True,
        )
