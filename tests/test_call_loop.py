"""The event loop the operator and the call workers run litellm on (``new_call_loop``)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from streaming_agents.llm.litellm_client import attempt_call, new_call_loop
from streaming_agents.testing.fake_llm import FakeLLM


async def _make_calls(fake_llm: FakeLLM, n: int) -> list[str]:
    kwargs = {
        "model": "openai/gpt-4o-mini",
        "api_base": fake_llm.base_url,
        "api_key": "sk-fake-test-key",
        "timeout": 10,
        "num_retries": 0,
        "max_retries": 0,
    }
    attempts = await asyncio.gather(
        *(
            attempt_call({**kwargs, "messages": [{"role": "user", "content": m}]})
            for m in map(str, range(n))
        )
    )
    return [a.kind for a in attempts]


def _executor(loop: asyncio.AbstractEventLoop) -> Any:
    return getattr(loop, "_default_executor", None)


def test_litellm_request_building_runs_on_the_loop_thread(fake_llm: FakeLLM) -> None:
    """Once warm, every call's request building runs inline and nothing goes to the pool.

    A litellm upgrade that changed how ``acompletion`` hands over its request
    building would show here (the optimisation would silently stop applying; calls
    would still work).  The openai SDK's first calls look up the platform in a pool
    thread (blocking I/O): that stays in the pool.
    """
    loop = new_call_loop()
    try:
        assert loop.run_until_complete(_make_calls(fake_llm, 10)) == ["ok"] * 10
        executor = _executor(loop)
        inlined, pooled = executor.inlined, executor.pooled
        assert inlined == 10
        assert loop.run_until_complete(_make_calls(fake_llm, 20)) == ["ok"] * 20
        assert (executor.inlined - inlined, executor.pooled - pooled) == (20, 0)
        assert fake_llm.stats()["requests_total"] == 30
    finally:
        loop.close()


def test_other_blocking_work_still_goes_to_the_pool() -> None:
    loop = new_call_loop()
    try:
        where = loop.run_until_complete(
            loop.run_in_executor(None, lambda: threading.current_thread().name)
        )
        resolved = loop.run_until_complete(
            loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        )
        assert where.startswith("litellm-blocking")
        assert resolved
        assert (_executor(loop).inlined, _executor(loop).pooled) == (0, 2)
    finally:
        loop.close()
