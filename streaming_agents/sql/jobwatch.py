"""Loud, bounded failure for SQL jobs: restart budget, worker imports, root causes on the console.

* :func:`job_settings` -- the Flink options the SQL runner adds to its
  environment: a fixed-delay restart strategy with a finite budget (Flink's
  default with checkpointing on is to restart forever) and a REST port for
  the local mini-cluster, so the runner can read each job's exceptions.
* :func:`worker_pythonpath` -- re-exported from
  :mod:`streaming_agents.runtime.execution` (the package's folder on the
  workers' ``python.pythonpath`` when it is not in site-packages).
* :class:`JobWatcher` -- a daemon thread polling the REST API for every job
  the session started; each new task failure is printed at once as one line
  with its root cause, so a job that Flink is restarting is never silent.
* :func:`root_cause` -- the innermost useful line of a Java/Python error chain.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import IO

from streaming_agents.runtime.execution import worker_pythonpath

__all__ = ["JobWatcher", "free_port", "job_settings", "root_cause", "worker_pythonpath"]

_PEMJA = re.compile(r"<class '(?:[\w.]+\.)?([\w]+)'>: (.*)")
_JAVA_PREFIX = re.compile(r"^(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error|Failure)\b:?\s*)")
_PY_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(?::\s?(.*))?$")
_WRAPPERS = (
    "Job execution failed",
    "Recovery is suppressed",
    "Failed to wait job finish",
    "An error occurred while calling",
    "Error received from SDK harness",
)


def free_port() -> int:
    """A TCP port free on localhost right now (for the mini-cluster's REST endpoint)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def job_settings(
    restart_attempts: int = 3, restart_delay_s: float = 2.0, rest_port: int | None = None
) -> dict[str, str]:
    """Flink options: restart at most ``restart_attempts`` times, then fail the job."""
    if restart_attempts < 0:
        from streaming_agents.errors import ConfigError

        raise ConfigError(f"restart attempts must be >= 0, got {restart_attempts}")
    settings = {
        "restart-strategy.type": "fixed-delay" if restart_attempts else "none",
        "restart-strategy.fixed-delay.attempts": str(restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{int(restart_delay_s * 1000)} ms",
    }
    if rest_port is not None:
        settings["rest.bind-port"] = str(rest_port)
        settings["rest.port"] = str(rest_port)
        settings["rest.address"] = "127.0.0.1"
        settings["rest.bind-address"] = "127.0.0.1"
    return settings


def _clean(line: str) -> str:
    line = line.strip().removeprefix("Caused by:").strip()
    pemja = _PEMJA.search(line)
    if pemja:
        return f"{pemja.group(1)}: {pemja.group(2)}"
    return _JAVA_PREFIX.sub(lambda m: m.group(1), line)


def _python_error(lines: list[str]) -> str | None:
    """The final ``Name: message`` line of the last Python traceback in ``lines``."""
    found = None
    in_traceback = False
    for raw in lines:
        if "Traceback (most recent call last)" in raw:
            in_traceback = True
            continue
        if in_traceback and raw and not raw[0].isspace():
            match = _PY_ERROR.match(raw.strip())
            if match:
                found = raw.strip()
                in_traceback = False
    return found


def root_cause(text: str) -> str:
    """The innermost useful line of an error chain (Java ``Caused by:``, Python tracebacks)."""
    lines = text.splitlines()
    python = _python_error(lines)
    if python:
        return python[:500]
    heads = [ln for ln in lines if ln.strip().startswith("Caused by:")]
    candidates = [_clean(h) for h in reversed(heads)]
    first = next((ln for ln in lines if ln.strip()), "")
    candidates.append(_clean(first))
    for candidate in candidates:
        if candidate and not any(w in candidate for w in _WRAPPERS):
            return candidate[:500]
    return (candidates[0] if candidates else "unknown error")[:500]


@dataclass
class _Job:
    number: int
    line: int
    job_id: str
    rest_url: str
    seen: set[tuple[int, str]] = field(default_factory=set)
    causes: list[str] = field(default_factory=list)


class JobWatcher:
    """Prints every task failure of the watched jobs as it happens (one line each).

    Reads ``GET /jobs/<id>/exceptions`` of the job's REST endpoint (each
    local job has a mini-cluster of its own) once per ``interval_s``.
    Nothing here changes a job; it only reports.
    """

    def __init__(
        self,
        err: IO[str] | None = None,
        *,
        restart_attempts: int | None = None,
        interval_s: float = 0.2,
    ) -> None:
        self.err = err if err is not None else sys.stderr
        self.restart_attempts = restart_attempts
        self.interval_s = interval_s
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def watch(self, number: int, line: int, job_id: str, rest_url: str) -> None:
        """Start reporting the failures of ``job_id`` (statement ``number`` at ``line``)."""
        with self._lock:
            self._jobs[job_id] = _Job(number, line, job_id, rest_url.rstrip("/"))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sql-job-watch", daemon=True)
            self._thread.start()

    def causes(self, job_id: str) -> list[str]:
        """Root causes seen so far for ``job_id`` (oldest first)."""
        self.poll()
        with self._lock:
            job = self._jobs.get(job_id)
            return list(job.causes) if job else []

    def stop(self) -> None:
        """Stop polling (a last poll is made by :meth:`causes` when asked)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def poll(self) -> None:
        """Read every watched job's exceptions once; print the new ones."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            entries = self._entries(job)
            for entry in sorted(entries, key=lambda e: int(str(e.get("timestamp") or 0))):
                seen = (int(str(entry.get("timestamp") or 0)), str(entry.get("taskName")))
                with self._lock:
                    if seen in job.seen:
                        continue
                    job.seen.add(seen)
                    cause = root_cause(str(entry.get("stacktrace") or entry.get("exceptionName")))
                    job.causes.append(cause)
                    count = len(job.causes)
                self._report(job, entry, cause, count)

    def _entries(self, job: _Job) -> list[dict[str, object]]:
        url = f"{job.rest_url}/jobs/{job.job_id}/exceptions?maxExceptions=20"
        try:
            with self._opener.open(url, timeout=5) as response:
                body = json.loads(response.read())
        except (OSError, ValueError):  # mini-cluster gone or not up yet: nothing new to say
            return []
        history = body.get("exceptionHistory") if isinstance(body, dict) else None
        entries = history.get("entries") if isinstance(history, dict) else None
        return [e for e in entries or [] if isinstance(e, dict)]

    def _report(self, job: _Job, entry: dict[str, object], cause: str, count: int) -> None:
        task = str(entry.get("taskName") or "").split(" (")[0]
        where = f" in {task!r}" if task else ""
        budget = ""
        if self.restart_attempts is not None:
            budget = (
                f" -- restart {count} of {self.restart_attempts}"
                if count <= self.restart_attempts
                else " -- no restarts left, the job fails"
            )
        print(
            f"[{job.number}] job {job.job_id[:8]} (line {job.line}) failed{where}: {cause}{budget}",
            file=self.err,
            flush=True,
        )
