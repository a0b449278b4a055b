"""The few calls of Flink's REST API the CLI makes, and their errors in one place.

``submit``/``status``/``savepoint``/``cancel``, ``promote``/``rollback`` and the
SQL runner's ``--rest`` target talk to a JobManager through :class:`FlinkRest`.
Errors are mapped once: an unreachable JobManager is an
:class:`~streaming_agents.errors.InfrastructureError` ("no Flink REST API at
..."), a 404 or 400 is the user's :class:`~streaming_agents.errors.ConfigError`
(an unknown job, a rejected request), any other HTTP status an
InfrastructureError.  Proxies from the environment are ignored: the REST API
is reached directly.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from streaming_agents.errors import ConfigError, InfrastructureError

__all__ = ["TERMINAL", "FlinkRest"]

TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED", "SUSPENDED"})
# What a savepoint's failure says when the job's tasks are not all running yet.
_NOT_RUNNING = (
    "Not all required tasks are currently running",
    "is not being executed at the moment",
)


class FlinkRest:
    """A JobManager's REST API at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, timeout_s: float = 15.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"the Flink REST API must be http://HOST:PORT, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """One request; the decoded JSON answer (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code == 404:
                raise ConfigError(f"not found on the cluster: {method} {path} ({detail})") from exc
            if exc.code == 400:
                raise ConfigError(f"the cluster rejected {method} {path}: {detail}") from exc
            raise InfrastructureError(
                f"Flink REST {method} {path}: HTTP {exc.code} {detail}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise InfrastructureError(f"no Flink REST API at {self.url} ({exc})") from exc
        return json.loads(raw) if raw else None

    def config(self) -> dict[str, str]:
        """The JobManager's configuration (``/jobmanager/config``) as a mapping."""
        rows = self.call("/jobmanager/config") or []
        return {str(r.get("key")): str(r.get("value")) for r in rows if isinstance(r, dict)}

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows (``/jobs/overview``)."""
        return list(self.call("/jobs/overview")["jobs"])

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's details; an unknown id is a ConfigError naming it."""
        try:
            found: dict[str, Any] = self.call(f"/jobs/{job_id}")
        except ConfigError:
            raise ConfigError(f"no job {job_id} on the cluster at {self.url}") from None
        return found

    def state(self, job_id: str) -> str:
        return str(self.job(job_id)["state"])

    def wait_state(self, job_id: str, wanted: set[str], timeout_s: float) -> str:
        """Poll until the job is in ``wanted``; a terminal state not wanted is an error."""
        job = self._poll(
            job_id,
            lambda job: str(job["state"]) in wanted,
            lambda last: f"job {job_id} still {'?' if last is None else last['state']}",
            timeout_s,
        )
        return str(job["state"])

    def _poll(
        self,
        job_id: str,
        done: Callable[[dict[str, Any]], bool],
        waiting_for: Callable[[dict[str, Any] | None], str],
        timeout_s: float,
    ) -> dict[str, Any]:
        """Fetch the job every 0.5 s until ``done(job)``, and return that job.

        A terminal state that is not ``done`` is an error at once; after
        ``timeout_s`` the error is ``waiting_for(the last job fetched, or
        None)`` followed by "after N s"."""
        deadline = time.monotonic() + timeout_s
        job: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if done(job):
                return job
            if job["state"] in TERMINAL:
                raise InfrastructureError(f"job {job_id} ended {job['state']}")
            time.sleep(0.5)  # the REST API has no notification to wait on
        raise InfrastructureError(f"{waiting_for(job)} after {timeout_s:.0f} s")

    def savepoint(self, job_id: str, target: str, *, stop: bool, timeout_s: float) -> str:
        """Trigger a savepoint (``stop``: stop-with-savepoint, no drain) and wait for it.

        Returns the savepoint's location.  With ``stop`` the job's exactly-once
        sinks commit everything up to the savepoint and the job ends FINISHED.
        A job whose tasks are not all running yet (just submitted, or restarting
        after a failure) refuses a savepoint and goes on running: that refusal is
        retried, once every task runs, until ``timeout_s``; any other failure is
        an ``InfrastructureError`` at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            why, location = self._one_savepoint(job_id, target, stop, deadline)
            if location is not None:
                return location
            if not any(mark in why for mark in _NOT_RUNNING) or time.monotonic() > deadline:
                raise InfrastructureError(f"savepoint of {job_id} failed: {why}")
            self.wait_running(job_id, max(1.0, deadline - time.monotonic()))

    def _one_savepoint(
        self, job_id: str, target: str, stop: bool, deadline: float
    ) -> tuple[str, str | None]:
        """One attempt: ``("", location)``, or ``(why it failed, None)``."""
        if stop:
            body = {"targetDirectory": target, "drain": False, "formatType": "CANONICAL"}
            trigger = self.call(f"/jobs/{job_id}/stop", "POST", body)
        else:
            body = {"target-directory": target, "cancel-job": False, "formatType": "CANONICAL"}
            trigger = self.call(f"/jobs/{job_id}/savepoints", "POST", body)
        request_id = trigger["request-id"]
        while time.monotonic() < deadline:
            status = self.call(f"/jobs/{job_id}/savepoints/{request_id}")
            if status["status"]["id"] == "COMPLETED":
                operation = status.get("operation") or {}
                if "failure-cause" in operation:
                    trace = str(operation["failure-cause"].get("stack-trace", ""))
                    causes = [ln for ln in trace.splitlines() if ln.startswith("Caused by")]
                    return (causes[-1] if causes else trace[:300]).strip(), None
                return "", str(operation["location"])
            time.sleep(0.5)  # the REST API has no notification to wait on
        raise InfrastructureError(f"savepoint of {job_id} not done in time")

    def wait_running(self, job_id: str, timeout_s: float) -> None:
        """Poll until the job is RUNNING and each task runs or has finished its input.

        A terminal job state is an error."""

        def up(job: dict[str, Any]) -> bool:
            vertices = job.get("vertices") or []
            tasks_up = all(v.get("status") in ("RUNNING", "FINISHED") for v in vertices)
            return job["state"] == "RUNNING" and tasks_up

        self._poll(job_id, up, lambda _: f"job {job_id}'s tasks not all running", timeout_s)

    def cancel(self, job_id: str) -> None:
        """Ask the cluster to cancel the job (returns at once; see :meth:`wait_state`)."""
        self.call(f"/jobs/{job_id}?mode=cancel", "PATCH")
