"""Worker processes for litellm calls: litellm's CPU off the operator's interpreter.

litellm spends several milliseconds of Python CPU per call (request building,
the openai SDK, cost lookup, logging).  In PyFlink's thread mode the agent
operator, its event loop and every litellm call share one interpreter and one
GIL, so that CPU caps a subtask at one core's worth of calls however many are
in flight.  A :class:`CallPool` is a :data:`~streaming_agents.llm.litellm_client.Transport`
that sends each call to one of ``processes`` worker processes
(``python -m streaming_agents.llm.call_worker``), each with its own GIL.

Only the call itself moves: the limiter (capacity, 429 back-off), retries,
fallbacks, journal and state stay with the operator.  Nothing in a worker is
durable, so nothing there matters for checkpoints: a worker that dies fails
its calls in flight as *transient* (the client retries them, on a new worker)
and a call whose reply was lost was never journalled, so recovery re-issues
it like any call in flight at a crash.  Workers exit when their stdin closes,
so they never outlive the TaskManager.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, Any

from streaming_agents.agent import LLMResult
from streaming_agents.llm.litellm_client import Attempt

__all__ = ["CallPool"]

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Attempt]"]


def _settle(future: asyncio.Future[Attempt], attempt: Attempt) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(attempt)


def _decode(fields: dict[str, Any]) -> Attempt:
    result = fields.get("result")
    return Attempt(
        kind=fields["kind"],
        result=LLMResult.model_validate(result) if result is not None else None,
        retry_after_s=fields.get("retry_after_s"),
        error=str(fields.get("error") or ""),
    )


class _Worker:
    """One worker process, the calls waiting for it, and the thread reading its replies."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", "streaming_agents.llm.call_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.pending: dict[int, _Waiter] = {}
        self.lock = threading.Lock()
        self.alive = True
        threading.Thread(target=self._read, name="call-pool-reader", daemon=True).start()

    def send(self, call_id: int, kwargs: dict[str, Any], waiter: _Waiter) -> bool:
        stdin = self.proc.stdin
        assert stdin is not None
        with self.lock:
            if not self.alive:
                return False
            self.pending[call_id] = waiter
            try:
                stdin.write(json.dumps({"id": call_id, "kwargs": kwargs}).encode() + b"\n")
                stdin.flush()
            except OSError:
                self.pending.pop(call_id, None)
                return False
        return True

    def _read(self) -> None:
        stdout: IO[bytes] | None = self.proc.stdout
        assert stdout is not None
        for line in stdout:
            reply = json.loads(line)
            with self.lock:
                waiter = self.pending.pop(int(reply["id"]), None)
            if waiter is not None:
                loop, future = waiter
                loop.call_soon_threadsafe(_settle, future, _decode(reply["attempt"]))
        code = self.proc.wait()
        with self.lock:
            self.alive = False
            orphans, self.pending = list(self.pending.values()), {}
        gone = Attempt("transient", error=f"call worker exited with code {code}")
        for loop, future in orphans:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, future, gone)

    def load(self) -> int:
        return len(self.pending)

    def stop(self) -> None:
        with self.lock:
            self.alive = False
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class CallPool:
    """A ``Transport`` running each call in the least busy of ``processes`` workers.

    ``python`` must be an interpreter that can import ``streaming_agents`` and
    litellm; ``pythonpath`` is prepended to its ``PYTHONPATH`` (the operator
    passes its own ``sys.path``).  Workers start on the first call and are
    replaced when they die.
    """

    def __init__(self, processes: int, python: str, pythonpath: Sequence[str] = ()) -> None:
        self.processes = processes
        self.python = python
        paths = [p for p in pythonpath if p and os.path.isdir(p)]
        self._env = dict(os.environ)
        if paths:
            self._env["PYTHONPATH"] = os.pathsep.join(paths)
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._closed = False

    def _pick(self) -> _Worker:
        with self._lock:
            self._workers = [w for w in self._workers if w.alive]
            if len(self._workers) < self.processes:
                self._workers.append(_Worker(self.python, self._env))
            return min(self._workers, key=_Worker.load)

    async def __call__(self, kwargs: dict[str, Any]) -> Attempt:
        if self._closed:
            return Attempt("failed", error="call pool closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Attempt] = loop.create_future()
        worker = self._pick()
        if not worker.send(next(self._ids), kwargs, (loop, future)):
            return Attempt("transient", error="call worker not accepting calls")
        return await future

    def workers(self) -> list[int]:
        """Process ids of the live workers."""
        with self._lock:
            return [w.proc.pid for w in self._workers if w.alive]

    def close(self) -> None:
        """Kill the workers (their calls in flight are simply never answered)."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
