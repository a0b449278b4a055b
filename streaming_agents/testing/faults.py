"""Failures on purpose, for recovery tests users can write too.

:class:`CrashOnce` is a pass-through map placed after an operator under test.
It logs every record it sees, one file per execution attempt, and raises
:class:`InjectedFailure` once, at the ``at_record``-th record of the first
attempt (attempts after the crash log to ``attempt-1.log``).
Flink then fails the task, restores the last completed checkpoint and
replays; comparing the attempt logs with the committed output tells how many
records were produced twice internally and still delivered once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from pyflink.datastream import MapFunction, RuntimeContext

from streaming_agents.errors import RuntimeFailure

__all__ = ["CrashOnce", "CrashSwitch", "InjectedFailure", "attempt_logs"]


class InjectedFailure(RuntimeFailure):
    """Raised on purpose by :class:`CrashOnce`."""


class CrashSwitch:
    """The logic of :class:`CrashOnce`, for any Flink function (a SQL UDF too).

    Call :meth:`open`/:meth:`close` from the function's own and :meth:`see`
    on every record: it logs the record for the current attempt and raises
    :class:`InjectedFailure` once, at the ``at_record``-th record of the first.
    """

    def __init__(self, log_dir: str, at_record: int) -> None:
        self.log_dir = log_dir
        self.at_record = at_record
        self._log: TextIO | None = None
        self._seen = 0
        self._attempt = 0

    def open(self) -> None:
        # Thread mode has no get_attempt_number(): the crash marker tells the
        # first attempt from the ones after it.
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        self._attempt = 1 if Path(self.log_dir, "crashed").exists() else 0
        self._log = open(Path(self.log_dir, f"attempt-{self._attempt}.log"), "a")  # noqa: SIM115

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def see(self, value: Any) -> None:
        assert self._log is not None
        self._log.write(f"{value}\n")
        self._log.flush()
        self._seen += 1
        if self._attempt == 0 and self._seen == self.at_record:
            Path(self.log_dir, "crashed").touch()
            raise InjectedFailure(f"injected failure at record {self._seen}")


class CrashOnce(MapFunction):  # type: ignore[misc]
    """Identity map that crashes the task once, at a chosen record."""

    def __init__(self, log_dir: str, at_record: int) -> None:
        self.switch = CrashSwitch(log_dir, at_record)

    def open(self, runtime_context: RuntimeContext) -> None:
        self.switch.open()

    def close(self) -> None:
        self.switch.close()

    def map(self, value: Any) -> Any:
        self.switch.see(value)
        return value


def attempt_logs(log_dir: str | Path) -> dict[int, list[str]]:
    """The records :class:`CrashOnce` saw, per execution attempt."""
    logs: dict[int, list[str]] = {}
    for path in sorted(Path(log_dir).glob("attempt-*.log")):
        attempt = int(path.stem.split("-", 1)[1])
        logs[attempt] = path.read_text().splitlines()
    return logs
