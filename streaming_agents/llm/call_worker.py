"""A worker process making litellm calls for :class:`~streaming_agents.llm.call_pool.CallPool`.

``python -m streaming_agents.llm.call_worker`` reads one JSON request per line
on stdin (``{"id": n, "kwargs": {...}}``), runs each as its own task on an
asyncio loop (:func:`~streaming_agents.llm.litellm_client.attempt_call`) and
writes one JSON reply per line (``{"id": n, "attempt": {...}}``), in
completion order.  It exits when stdin closes, so a worker never outlives the
process that started it, even one killed with ``kill -9``.

The protocol uses the process's original stdout; ``sys.stdout`` is pointed at
stderr so that nothing printed by a library can corrupt a reply.  The API
key is read here, from the environment variable whose *name* or the
reference (``file:/path``...) the request carries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from typing import IO, Any

from streaming_agents.llm.litellm_client import (
    Attempt,
    attempt_call,
    new_call_loop,
    take_worker_key,
)

__all__ = ["main"]


async def _serve(out: IO[bytes]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(line: bytes) -> None:
        message = json.loads(line)
        kwargs: dict[str, Any] = message["kwargs"]
        try:
            take_worker_key(kwargs)
            attempt = await attempt_call(kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which decides
            attempt = Attempt("failed", error=f"{type(exc).__name__}: {exc}")
        reply = {"id": message["id"], "attempt": _encode(attempt)}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()

    while line := await reader.readline():
        task = loop.create_task(handle(line))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _encode(attempt: Attempt) -> dict[str, Any]:
    fields = dataclasses.asdict(attempt)
    fields["result"] = attempt.result.model_dump(mode="json") if attempt.result else None
    return fields


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    with asyncio.Runner(loop_factory=new_call_loop) as runner:
        runner.run(_serve(out))


if __name__ == "__main__":
    main()
