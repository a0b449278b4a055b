"""Drive the agent operator's engine (ChainRunner + litellm client) without Flink."""

from __future__ import annotations

import time
from typing import Any

from streaming_agents import Agent, Journal, NullJournal
from streaming_agents.llm.litellm_client import LiteLLMClient
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.runtime.chains import ChainRunner, Completion


def run_events(
    agent: Agent[Any],
    events: list[dict[str, Any]],
    *,
    capacity: int = 20,
    journal: Journal | None = None,
    fence_side_effects: bool = False,
    limiter: AdaptiveLimiter | None = None,
    timeout_s: float = 120,
) -> tuple[dict[str, list[Completion]], ChainRunner]:
    """Feed events (keyed by their "k") through a ChainRunner; completions per key."""
    limiter = limiter or AdaptiveLimiter(capacity)
    client = LiteLLMClient(agent.model, limiter, backoff_base_s=0.05)
    runner = ChainRunner(
        agent,
        client.complete,
        journal or NullJournal(),
        limiter,
        fence_side_effects=fence_side_effects,
    )
    runner.start()
    try:
        chains = {}
        for event in events:
            key = str(event["k"])
            chain = chains.get(key) or runner.ensure_chain(key, agent.memory.load(None), [])
            chains[key] = chain
            runner.enqueue(chain, {"e": event, "s": None})
        done: dict[str, list[Completion]] = {}
        deadline = time.monotonic() + timeout_s
        for key, chain in chains.items():
            assert runner.wait_idle(chain, max(0.1, deadline - time.monotonic())), key
            done[key] = runner.take_done(chain)
        return done, runner
    finally:
        runner.stop()
