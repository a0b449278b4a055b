"""Token and cost budgets per agent and time window, kept outside Flink state.

The ledger is a SQLite file beside the journal: it survives restarts and
failures (a budget must not reset because a job was restored), and every
subtask on the host shares it.  Only calls actually made are charged;
journal hits are free.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Budget", "BudgetLedger", "default_ledger_path"]


def default_ledger_path(agent: str) -> Path:
    """``$STREAMING_AGENTS_JOURNAL_DIR/<agent>.budget.sqlite`` (default: the temp dir)."""
    root = os.environ.get("STREAMING_AGENTS_JOURNAL_DIR") or os.path.join(
        tempfile.gettempdir(), "streaming_agents", "journal"
    )
    return Path(root) / f"{agent}.budget.sqlite"


class Budget(BaseModel):
    """Limits per ``window_s``; what to do with events once they are reached.

    ``park``: the event waits (in keyed state, checkpointed) until the next
    window; ``dead_letter``: it goes to the dead-letter output with reason
    ``over budget``.  Never dropped.
    """

    model_config = ConfigDict(frozen=True)

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    window_s: int = Field(default=3600, ge=1)
    on_exceeded: Literal["park", "dead_letter"] = "park"
    ledger_path: str | None = None

    def window(self, now: float | None = None) -> int:
        return int((time.time() if now is None else now) // self.window_s)

    def seconds_to_next_window(self) -> float:
        return self.window_s - (time.time() % self.window_s)


class BudgetLedger:
    """Tokens and cost spent per (agent, window)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS spend (agent TEXT, window INTEGER,"
                " tokens INTEGER, cost REAL, PRIMARY KEY (agent, window))"
            )
            conn.commit()
            self._conn = conn
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

    def charge(self, agent: str, window: int, tokens: int, cost: float) -> None:
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT INTO spend VALUES (?, ?, ?, ?) ON CONFLICT(agent, window) DO UPDATE"
                " SET tokens = tokens + excluded.tokens, cost = cost + excluded.cost",
                (agent, window, tokens, cost),
            )
            db.commit()

    def over(self, agent: str, budget: Budget) -> bool:
        tokens, cost = self.spent(agent, budget.window())
        if budget.max_tokens is not None and tokens >= budget.max_tokens:
            return True
        return budget.max_cost_usd is not None and cost >= budget.max_cost_usd

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
