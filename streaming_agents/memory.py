"""Agent memory: a typed, versioned pydantic model kept per key in Flink state.

Memory is serialized as JSON (never pickled) so that a checkpoint or savepoint
taken by one version of an agent can be read by a newer one: every stored
document carries ``schema_version`` and :meth:`Memory.migrate` upgrades old
documents on read.  Nothing secret belongs in memory -- it is written to every
checkpoint.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from streaming_agents.errors import ConfigError

__all__ = ["ConversationMemory", "Memory", "MemoryPolicy", "Turn"]


class MemoryPolicy(BaseModel):
    """How memory is bounded after every reduce.

    * ``max_turns``: keep only the last N turns.
    * ``max_tokens``: when the estimated token count of the kept turns exceeds
      it, the oldest turns are folded into ``summary`` by the agent's
      summariser (default: extractive, no LLM call) until it fits.
    * ``ttl_seconds``: memory untouched for this long is dropped (Flink state
      TTL, processing time); the next event starts a fresh conversation.
    """

    model_config = ConfigDict(frozen=True)

    max_turns: int | None = Field(default=20, ge=1)
    max_tokens: int | None = Field(default=None, ge=16)
    ttl_seconds: int | None = Field(default=None, ge=1)


class Memory(BaseModel):
    """Base class of agent memories.

    Subclasses bump ``SCHEMA_VERSION`` when their shape changes and override
    :meth:`migrate` to upgrade documents written by older versions.
    """

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = 1
    turn_count: int = 0

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Upgrade a stored document from ``from_version`` to ``SCHEMA_VERSION``.

        The default accepts documents of the current version only.
        """
        if from_version != cls.SCHEMA_VERSION:
            raise ConfigError(
                f"{cls.__name__} cannot read memory schema_version {from_version}; "
                f"override {cls.__name__}.migrate to upgrade it to {cls.SCHEMA_VERSION}"
            )
        return data

    @classmethod
    def load(cls, document: str | None) -> Self:
        """Read memory from its stored JSON (``None`` = a new key)."""
        if document is None:
            return cls(schema_version=cls.SCHEMA_VERSION)
        raw = json.loads(document)
        if not isinstance(raw, dict):
            raise ConfigError(f"stored memory is not a JSON object: {document[:80]!r}")
        return cls._from_dict(raw)

    @classmethod
    def _from_dict(cls, raw: dict[str, Any]) -> Self:
        version = int(raw.get("schema_version", 1))
        if version != cls.SCHEMA_VERSION:
            raw = cls.migrate(raw, version)
            raw["schema_version"] = cls.SCHEMA_VERSION
        return cls.model_validate(raw)

    def dump(self) -> str:
        """The JSON document stored in Flink state."""
        return self.model_dump_json()

    def bounded(self, policy: MemoryPolicy) -> Self:
        """Return memory trimmed to ``policy``; the default has nothing to trim."""
        return self


class Turn(BaseModel):
    """One exchange of a conversation."""

    model_config = ConfigDict(frozen=True)

    user: str
    assistant: str


def _estimate_tokens(text: str) -> int:
    return len(text.split()) + 1


class ConversationMemory(Memory):
    """The default memory: recent turns plus a rolling summary of older ones."""

    turns: list[Turn] = Field(default_factory=list)
    summary: str = ""

    def with_turn(self, user: str, assistant: str) -> Self:
        """A copy with one more turn (``turn_count`` counts every turn ever)."""
        return self.model_copy(
            update={
                "turns": [*self.turns, Turn(user=user, assistant=assistant)],
                "turn_count": self.turn_count + 1,
            }
        )

    def bounded(self, policy: MemoryPolicy) -> Self:
        turns = list(self.turns)
        summary = self.summary
        if policy.max_tokens is not None:

            def size() -> int:
                return sum(_estimate_tokens(t.user) + _estimate_tokens(t.assistant) for t in turns)

            while len(turns) > 1 and size() > policy.max_tokens:
                oldest = turns.pop(0)
                summary = _fold(summary, oldest, policy.max_tokens)
        if policy.max_turns is not None and len(turns) > policy.max_turns:
            for oldest in turns[: len(turns) - policy.max_turns]:
                summary = _fold(summary, oldest, policy.max_tokens)
            turns = turns[len(turns) - policy.max_turns :]
        return self.model_copy(update={"turns": turns, "summary": summary})

    def as_messages(self) -> list[dict[str, str]]:
        """The conversation so far as chat messages (summary first)."""
        messages: list[dict[str, str]] = []
        if self.summary:
            messages.append({"role": "system", "content": f"Earlier conversation: {self.summary}"})
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.user})
            messages.append({"role": "assistant", "content": turn.assistant})
        return messages


def _fold(summary: str, turn: Turn, max_tokens: int | None) -> str:
    """Extractive summary: keep the gist of old turns within a word budget."""
    words = (summary + f" | user: {turn.user} / assistant: {turn.assistant}").split()
    limit = max(16, (max_tokens or 256) // 4)
    return " ".join(words[-limit:]).lstrip("| ")
