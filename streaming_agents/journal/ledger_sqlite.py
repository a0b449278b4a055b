"""The SQLite budget ledger: spend per (agent, window) in one file on the host.

A reservation is one ``BEGIN IMMEDIATE`` transaction (read the window's
spend, add the estimate if it fits, commit), so the subtasks of one host
never grant past the budget together.  The file is shared only by processes
that see the same disk: hosts with their own disks keep separate ledgers
(each may spend the whole budget).  Use the Kafka ledger for a cluster.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path

from streaming_agents.journal.files import connect_shared
from streaming_agents.journal.ledger import BudgetLimits, Reservation, fits

__all__ = ["SqliteLedger"]


def _create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS spend (agent TEXT, window INTEGER,"
        " tokens INTEGER, cost REAL, PRIMARY KEY (agent, window))"
    )


class SqliteLedger:
    """Tokens and cost per (agent, window) in a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_shared(Path(self.path), _create_table, isolation_level=None)
        return self._conn

    def spent(self, agent: str, window: int) -> tuple[int, float]:
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT tokens, cost FROM spend WHERE agent=? AND window=?", (agent, window)
                )
                .fetchone()
            )
        return (0, 0.0) if row is None else (int(row[0]), float(row[1]))

    def _add(
        self, db: sqlite3.Connection, agent: str, window: int, tokens: int, cost: float
    ) -> None:
        db.execute(
            "INSERT INTO spend VALUES (?, ?, ?, ?) ON CONFLICT(agent, window) DO UPDATE"
            " SET tokens = tokens + excluded.tokens, cost = cost + excluded.cost",
            (agent, window, tokens, cost),
        )

    def _reserve(
        self, agent: str, window: int, limits: BudgetLimits, tokens: int, cost: float
    ) -> Reservation | None:
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT tokens, cost FROM spend WHERE agent=? AND window=?", (agent, window)
                ).fetchone()
                spent = (0, 0.0) if row is None else (int(row[0]), float(row[1]))
                if not fits(limits, spent, tokens, cost):
                    return None
                self._add(db, agent, window, tokens, cost)
            finally:
                db.execute("COMMIT")
        return Reservation(uuid.uuid4().hex, agent, window, tokens, cost)

    async def reserve(
        self, agent: str, window: int, limits: BudgetLimits, tokens: int, cost: float
    ) -> Reservation | None:
        return await asyncio.to_thread(self._reserve, agent, window, limits, tokens, cost)

    def _settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        with self._lock:
            db = self._db()
            delta_t, delta_c = tokens - reservation.tokens, cost - reservation.cost
            self._add(db, reservation.agent, reservation.window, delta_t, delta_c)

    async def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        await asyncio.to_thread(self._settle, reservation, tokens, cost)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
