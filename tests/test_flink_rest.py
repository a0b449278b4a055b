"""FlinkRest's savepoint against a small stand-in for the JobManager's REST API.

A job whose tasks are not all running yet refuses a savepoint and goes on running
(seen in CI: ``promote`` right after production started, on a loaded machine);
``FlinkRest.savepoint`` waits for the tasks and tries again.  Any other failure
is reported at once.  tests/test_promote.py drives the real cluster.
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
            state = self.task_states.pop(0) if len(self.task_states) > 1 else self.task_states[0]
            return {"state": "RUNNING", "vertices": [{"status": state}, {"status": "RUNNING"}]}
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
