"""The null journal: nothing recorded, every replayed call is paid again.

For benchmarks and tests, or a deployment that prefers paying twice to
keeping a record (URI ``none``).
"""

from __future__ import annotations

from streaming_agents.agent import LLMResult

__all__ = ["NullJournal"]


class NullJournal:
    """No journal: every replayed call is paid again."""

    async def lookup(self, key: str, digest: str) -> LLMResult | None:
        return None

    async def append(self, key: str, digest: str, result: LLMResult) -> None:
        return None

    def get(self, digest: str) -> LLMResult | None:
        return None

    def put(self, digest: str, result: LLMResult) -> None:
        return None

    def close(self) -> None:
        return None
