"""What statements did, and how Flink's errors are reported."""

from __future__ import annotations

import queue
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from streaming_agents.errors import RuntimeFailure
from streaming_agents.sql.lexer import Statement

__all__ = [
    "SqlJobFailed",
    "StatementResult",
    "done_message",
    "flink_message",
    "wait_for_jobs",
]

_FLINK_POSITION = re.compile(r"(?:From line|line) (\d+), column (\d+)")


class SqlJobFailed(RuntimeFailure):
    """A job started by a SQL statement failed while running."""


@dataclass
class StatementResult:
    """What one statement did: ``kind`` is ddl, set, insert or query."""

    number: int
    line: int
    kind: str
    message: str = ""
    table_result: Any = None
    rows: list[Any] = field(default_factory=list)


def flink_message(exc: BaseException, statement: Statement, rewritten: bool) -> str:
    """The useful lines of a Py4J/PyFlink error, with the script line of a position."""
    lines = []
    for raw in str(exc).splitlines():
        text = raw.strip()
        if not text or text.startswith(("at ", "...")) or "Traceback" in text:
            continue
        text = re.sub(r"^(?:[\w$]+\.)+[\w$]*(?:Exception|Error): ", "", text)
        if text and text not in lines:
            lines.append(text)
    message = " / ".join(lines[:3]) or type(exc).__name__
    match = _FLINK_POSITION.search(message)
    if match and not rewritten:
        message += f" (script line {statement.line + int(match.group(1)) - 1})"
    return message


def done_message(kind: str, result: Any, words: list[str]) -> str:
    """One line for the console about a statement that ran."""
    if kind == "query":
        return ""
    if kind == "insert":
        client = result.get_job_client()
        return f"submitted job {client.get_job_id()}" if client is not None else "submitted"
    return "ok: " + " ".join(words[:3])


def wait_for_jobs(
    results: list[StatementResult], timeout_s: float | None = None, watcher: Any = None
) -> None:
    """Wait for the jobs of ``results`` together; the first that fails raises :class:`SqlJobFailed`.

    The message is the failure's root cause: the first one the
    :class:`~streaming_agents.sql.jobwatch.JobWatcher` saw (the failure that
    started the restarts), else the innermost cause in Flink's exception.
    The script's other jobs are cancelled then: a script fails as a whole.
    """
    records = [r for r in results if r.kind == "insert" and r.table_result is not None]
    done: queue.Queue[tuple[StatementResult, BaseException | None]] = queue.Queue()
    for record in records:
        threading.Thread(
            target=_wait_one, args=(record, timeout_s, done), name="sql-job-wait", daemon=True
        ).start()
    for _ in records:
        record, exc = done.get()
        if exc is not None:
            _cancel_others(records, record)
            raise _failure(record, exc, watcher) from None


def _wait_one(
    record: StatementResult,
    timeout_s: float | None,
    done: queue.Queue[tuple[StatementResult, BaseException | None]],
) -> None:
    try:
        if timeout_s is None:
            record.table_result.wait()
        else:
            record.table_result.wait(int(timeout_s * 1000))
    except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
        done.put((record, exc))
        return
    done.put((record, None))


def _cancel_others(records: list[StatementResult], failed: StatementResult) -> None:
    for other in records:
        client = other.table_result.get_job_client() if other is not failed else None
        if client is None:
            continue
        try:
            client.cancel()
        except Exception:  # noqa: BLE001 - already finished or gone: nothing left to cancel
            continue


def _failure(record: StatementResult, exc: BaseException, watcher: Any) -> SqlJobFailed:
    from streaming_agents.sql.jobwatch import root_cause

    causes: list[str] = []
    client = record.table_result.get_job_client()
    if watcher is not None and client is not None:
        causes = watcher.causes(str(client.get_job_id()))
    message = causes[0] if causes else root_cause(str(exc))
    restarts = f" (after {len(causes) - 1} restart(s))" if len(causes) > 1 else ""
    return SqlJobFailed(
        f"statement {record.number} (line {record.line}): job failed{restarts}: {message}"
    )
