"""FlinkRest's savepoint and job waits against a small stand-in for the JobManager's REST API.

A job whose tasks are not all running yet refuses a savepoint and goes on running
(seen in CI: ``promote`` right after production started, on a loaded machine);
``FlinkRest.savepoint`` waits for the tasks and tries again.  Any other failure
is reported at once.  ``wait_state``/``wait_running`` end at a wanted state, fail
at once at an unwanted terminal one, and time out naming what they waited for.
tests/test_promote.py drives the real cluster.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streaming_agents.errors import InfrastructureError
from streaming_agents.flink_rest import FlinkRest

NOT_RUNNING = (
    "org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint triggering task"
    " agent (1/1) of job j1 is not being executed at the moment. Aborting checkpoint."
    " Failure reason: Not all required tasks are currently running."
)


class _JobManager:
    """Answers like Flink: savepoint outcomes in order, task states in order."""

    def __init__(self, outcomes: list[str], task_states: list[str]) -> None:
        self.outcomes = outcomes  # "ok" or a failure's cause, one per trigger
        self.task_states = task_states  # one per job poll; the last one stays
        self.job_state = "RUNNING"
        self.job_polls = 0
        self.triggers = 0

    def answer(self, method: str, path: str) -> Any:
        if method == "POST" and path == "/jobs/j1/stop":
            self.triggers += 1
            return {"request-id": f"r{self.triggers}"}
        if path.startswith("/jobs/j1/savepoints/r"):
            outcome = self.outcomes[int(path.rsplit("r", 1)[1]) - 1]
            if outcome == "ok":
                return {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp-1"}}
            trace = f"java.util.concurrent.CompletionException\nCaused by: {outcome}"
            failure = {"failure-cause": {"stack-trace": trace}}
            return {"status": {"id": "COMPLETED"}, "operation": failure}
        if path == "/jobs/j1":
            self.job_polls += 1
            state = self.task_states.pop(0) if len(self.task_states) > 1 else self.task_states[0]
            return {"state": self.job_state, "vertices": [{"status": state}, {"status": "RUNNING"}]}
        return None


@pytest.fixture
def job_manager() -> Iterator[tuple[_JobManager, FlinkRest]]:
    jm = _JobManager([], ["RUNNING"])

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps(jm.answer(self.command, self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _reply

        def log_message(self, format: str, *args: Any) -> None:
            return None  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield jm, FlinkRest(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def test_a_savepoint_refused_while_tasks_start_is_taken_once_they_run(
    job_manager: tuple[_JobManager, FlinkRest],
) -> None:
    jm, rest = job_manager
    jm.outcomes = [NOT_RUNNING, "ok"]
    jm.task_states = ["INITIALIZING", "INITIALIZING", "RUNNING"]
    assert rest.savepoint("j1", "file:/sp", stop=True, timeout_s=30) == "file:/sp-1"
    assert jm.triggers == 2
    assert jm.task_states == ["RUNNING"]  # it waited for the tasks before trying again


def test_any_other_savepoint_failure_is_reported_at_once(
    job_manager: tuple[_JobManager, FlinkRest],
) -> None:
    jm, rest = job_manager
    jm.outcomes = ["java.io.IOException: No space left on device", "ok"]
    with pytest.raises(InfrastructureError, match="No space left on device"):
        rest.savepoint("j1", "file:/sp", stop=True, timeout_s=30)
    assert jm.triggers == 1


def test_waits_time_out_naming_what_they_waited_for(
    job_manager: tuple[_JobManager, FlinkRest],
) -> None:
    jm, rest = job_manager
    jm.job_state = "INITIALIZING"
    with pytest.raises(InfrastructureError, match=r"^job j1 still INITIALIZING after 1 s$"):
        rest.wait_state("j1", {"RUNNING"}, timeout_s=1.0)
    assert jm.job_polls >= 2  # it polled again before giving up
    with pytest.raises(InfrastructureError, match=r"^job j1 still \? after 0 s$"):
        rest.wait_state("j1", {"RUNNING"}, timeout_s=0.0)  # never asked
    jm.job_state, jm.task_states = "RUNNING", ["INITIALIZING"]
    with pytest.raises(InfrastructureError, match=r"^job j1's tasks not all running after 1 s$"):
        rest.wait_running("j1", timeout_s=1.0)


def test_waits_end_at_a_wanted_state_and_fail_at_an_unwanted_terminal_one(
    job_manager: tuple[_JobManager, FlinkRest],
) -> None:
    jm, rest = job_manager
    jm.task_states = ["INITIALIZING", "FINISHED"]
    rest.wait_running("j1", timeout_s=30)
    assert jm.job_polls == 2  # a finished task counts as up
    jm.job_state = "CANCELED"
    assert rest.wait_state("j1", {"CANCELED"}, timeout_s=30) == "CANCELED"
    for wait in (
        lambda: rest.wait_state("j1", {"RUNNING"}, 30),
        lambda: rest.wait_running("j1", 30),
    ):
        polls = jm.job_polls
        with pytest.raises(InfrastructureError, match=r"^job j1 ended CANCELED$"):
            wait()
        assert jm.job_polls == polls + 1  # at once, not at the timeout
