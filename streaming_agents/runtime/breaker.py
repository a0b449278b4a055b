"""Per-key rate circuit breaker of the agent operator.

Counts each key's arrivals in a sliding window in the operator's memory (not
in state: after a restore the count starts again, which only makes the
breaker more lenient for one window).
"""

from __future__ import annotations

import json
import time
from collections import deque

from streaming_agents.agent import CircuitBreaker

__all__ = ["RateBreaker"]


class RateBreaker:
    """Admits a key's event unless the key exceeded its rate in the last window."""

    def __init__(self, config: CircuitBreaker) -> None:
        self.config = config
        self._arrivals: dict[str, deque[float]] = {}
        self._last_prune = time.monotonic()

    def admit(self, key: str) -> bool:
        now = time.monotonic()
        horizon = now - self.config.per_seconds
        arrivals = self._arrivals.setdefault(key, deque())
        while arrivals and arrivals[0] < horizon:
            arrivals.popleft()
        if now - self._last_prune > self.config.per_seconds:
            self._prune(horizon)
        if len(arrivals) >= self.config.max_events:
            return False
        arrivals.append(now)
        return True

    def _prune(self, horizon: float) -> None:
        self._last_prune = time.monotonic()
        stale = [k for k, q in self._arrivals.items() if not q or q[-1] < horizon]
        for key in stale:
            del self._arrivals[key]

    def describe(self) -> str:
        c = self.config
        return f"more than {c.max_events} events in {c.per_seconds:g}s for this key"

    def report(self, key: str, agent: str, version: str) -> str:
        return json.dumps(
            {
                "kind": "circuit_open",
                "agent": agent,
                "version": version,
                "key": key,
                "reason": self.describe(),
                "ts": time.time(),
            }
        )
