"""One event loop per Python worker for the LLM calls of SQL functions, closed cleanly.

PyFlink's async scalar operator runs ``eval`` on an event loop it stops and
closes *before* it calls the functions' ``close()``.  litellm leaves a
logging worker task waiting on the loop of the calls (it logs every call's
success), so when PyFlink's loop was closed under it the worker died with
``Exception ignored ... RuntimeError: Event loop is closed`` tracebacks on the
console at the end of every job with ``AI_COMPLETE`` / ``AI_EMBEDDING``.

Here the calls run on a loop of our own (:func:`new_call_loop`, in a daemon
thread), shared by every SQL function of the worker process and
reference-counted: the last ``close()`` stops litellm's logging worker on
that loop, then stops and closes the loop.  ``eval`` awaits the call's
future from PyFlink's loop, so many calls stay in flight.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["acquire", "release", "run"]

T = TypeVar("T")
log = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_users = 0


def acquire() -> None:
    """Start the shared call loop (first user) or count one more user."""
    global _loop, _thread, _users
    from streaming_agents.llm.litellm_client import new_call_loop

    with _lock:
        _users += 1
        if _loop is not None:
            return
        loop = new_call_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        _thread = threading.Thread(target=serve, name="sql-llm-calls", daemon=True)
        _thread.start()
        ready.wait()
        _loop = loop


async def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the call loop; awaitable from any other loop."""
    loop = _loop
    if loop is None:
        coroutine.close()
        from streaming_agents.errors import InfrastructureError

        raise InfrastructureError("the SQL call loop is not running (open() not called)")
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))


async def _shutdown() -> None:
    import importlib

    try:
        module = importlib.import_module("litellm.litellm_core_utils.logging_worker")
    except ImportError:  # another litellm layout: nothing of it to stop
        module = None
    worker = getattr(module, "GLOBAL_LOGGING_WORKER", None)
    if worker is not None:
        try:  # let the queued success-logging callbacks finish (they only log), then stop
            await asyncio.wait_for(worker.flush(), timeout=2.0)
        except TimeoutError:
            log.warning("SQL call loop: litellm's logging callbacks did not finish in 2 s")
        await worker.stop(timeout=2.0)
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def release() -> None:
    """One user fewer; the last one stops litellm's logging worker and closes the loop."""
    global _loop, _thread, _users
    with _lock:
        _users = max(0, _users - 1)
        if _users or _loop is None:
            return
        loop, thread = _loop, _thread
        _loop, _thread = None, None
    try:
        asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(timeout=10)
    except Exception as exc:  # noqa: BLE001 - shutting down: report, then close anyway
        log.warning("SQL call loop: shutdown incomplete: %s", exc)
    loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(timeout=10)
    loop.close()
