"""What statements did, and how Flink's errors are reported."""

from __future__ import annotations

import re
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
    """Wait for the jobs of ``results``; a failed job raises :class:`SqlJobFailed`.

    The message is the failure's root cause: the first one the
    :class:`~streaming_agents.sql.jobwatch.JobWatcher` saw (the failure that
    started the restarts), else the innermost cause in Flink's exception.
    """
    from streaming_agents.sql.jobwatch import root_cause

    for record in results:
        if record.kind != "insert" or record.table_result is None:
            continue
        try:
            if timeout_s is None:
                record.table_result.wait()
            else:
                record.table_result.wait(int(timeout_s * 1000))
        except Exception as exc:  # noqa: BLE001 - Py4J/PyFlink raise many unrelated types
            causes: list[str] = []
            client = record.table_result.get_job_client()
            if watcher is not None and client is not None:
                causes = watcher.causes(str(client.get_job_id()))
            message = causes[0] if causes else root_cause(str(exc))
            restarts = f" (after {len(causes) - 1} restart(s))" if len(causes) > 1 else ""
            raise SqlJobFailed(
                f"statement {record.number} (line {record.line}): job failed{restarts}: {message}"
            ) from None
