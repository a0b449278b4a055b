"""litellm calls in worker processes (``run_agent(..., llm_processes=N)``).

Real worker processes, real litellm, real HTTP to the fake LLM.  A worker
killed mid-call must cost retries, never results; workers must not outlive
their parent; the API key must never cross the pipe.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from agent_support import by_key, echo_agent, events, run_collect

from streaming_agents import LLMRequest, ModelSpec
from streaming_agents.llm.call_pool import CallPool
from streaming_agents.llm.litellm_client import API_KEY_ENV_ARG, LiteLLMClient
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.testing.fake_llm import FakeLLM

KEY_ENV = "FAKE_LLM_API_KEY"


def _client(fake_llm: FakeLLM, pool: CallPool, retries: int = 3) -> LiteLLMClient:
    spec = ModelSpec(
        model="openai/fake-model",
        api_base=fake_llm.base_url,
        api_key_env=KEY_ENV,
        num_retries=retries,
    )
    return LiteLLMClient(
        spec, AdaptiveLimiter(50), transport=pool, remote_key=True, backoff_base_s=0.05
    )


def _ask(prompt: str) -> LLMRequest:
    return LLMRequest(messages=({"role": "user", "content": prompt},))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def test_calls_run_in_worker_processes_and_the_key_stays_out_of_the_pipe(
    fake_llm: FakeLLM,
) -> None:
    pool = CallPool(2, sys.executable, sys.path)
    client = _client(fake_llm, pool)
    try:
        sent = client._kwargs(_ask("x"), "openai/fake-model")
        assert sent[API_KEY_ENV_ARG] == KEY_ENV and "api_key" not in sent
        assert os.environ[KEY_ENV] not in json.dumps(sent)

        async def many() -> list[str]:
            results = await asyncio.gather(*(client.complete(_ask(f"p{i}")) for i in range(30)))
            return [r.content for r in results]

        before = fake_llm.stats()["requests_total"]
        replies = asyncio.run(many())
        assert replies == [f"echo[n=1]: p{i}" for i in range(30)]
        assert fake_llm.stats()["requests_total"] - before == 30
        workers = pool.workers()
        assert len(workers) == 2 and os.getpid() not in workers
        assert client.stats.calls == 30 and client.stats.prompt_tokens > 0
    finally:
        pool.close()
    assert not any(_alive(pid) for pid in workers)


def test_a_worker_killed_mid_call_costs_retries_not_results(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"latency_ms": 800})
    pool = CallPool(1, sys.executable, sys.path)
    client = _client(fake_llm, pool)

    async def scenario() -> list[str]:
        calls = [asyncio.ensure_future(client.complete(_ask(f"q{i}"))) for i in range(5)]
        await asyncio.sleep(0.4)  # the calls are in flight in the worker
        [victim] = pool.workers()
        os.kill(victim, signal.SIGKILL)
        results = await asyncio.gather(*calls)
        assert victim not in pool.workers(), "a new worker took over"
        return [r.content for r in results]

    try:
        assert asyncio.run(scenario()) == [f"echo[n=1]: q{i}" for i in range(5)]
        assert client.stats.retries == 5 and client.stats.failures == 0
    finally:
        pool.close()


def test_workers_exit_with_their_parent(tmp_path: Path, fake_llm: FakeLLM) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, os, sys
        from streaming_agents.llm.call_pool import CallPool
        pool = CallPool(2, sys.executable, sys.path)
        kwargs = dict(model="openai/fake-model", api_base={fake_llm.base_url!r},
                      messages=[{{"role": "user", "content": "hi"}}], api_key="k")
        async def main():
            await asyncio.gather(pool(dict(kwargs)), pool(dict(kwargs)))
        asyncio.run(main())
        print(" ".join(map(str, pool.workers())), flush=True)
        os.kill(os.getpid(), 9)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "workers outlived a parent killed with -9"


def test_the_agent_operator_with_llm_processes_keeps_order_and_memory(fake_llm: FakeLLM) -> None:
    fake_llm.configure({"latency_ms": {"kind": "uniform", "min_ms": 5, "max_ms": 60}})
    outputs, dead = run_collect(
        echo_agent(fake_llm, name="pooled"), events(20, 5), capacity=50, llm_processes=2
    )
    assert dead == []
    for key, outs in by_key(outputs).items():
        assert [o["input"]["seq"] for o in outs] == list(range(5)), key
        assert [o["turn"] for o in outs] == [1, 2, 3, 4, 5], key
        # with memory, turn t sends 2 (t - 1) + 1 messages
        assert [o["output"] for o in outs] == [
            f"echo[n={2 * t + 1}]: {key}#{t}" for t in range(5)
        ], key
