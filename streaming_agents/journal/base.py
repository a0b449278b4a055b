"""The journal's two roles as protocols, and what they share.

* :class:`ResultCache` -- answers already paid for, by request digest.  The
  agent operator looks a request up before paying for it and appends the
  result (acknowledged) before acting on it, so a replay after a failure
  repeats no call whose answer was recorded.
* :class:`RequestLog` -- which request each agent sent for which key and
  turn; replays and the divergence report read it.

A journal is *scoped*: entries written under one :class:`JournalScope` (job,
agent, version) answer lookups of that scope only, so two jobs running the
same agent do not share answers unless they are given the same scope.  A
backend opened without a scope (``scope=None``) answers from every scope:
that is what a replay of a production journal wants; a scope whose version
is :data:`ANY_VERSION` answers from every version of one job's agent (the
digest does not cover the version, so a candidate finds production's answers).

The journal is an optimisation of cost, not of correctness: a lost entry only
means a call is paid again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from streaming_agents.agent import LLMRequest, LLMResult, ModelSpec

__all__ = [
    "ANY_VERSION",
    "JournalScope",
    "RecordedRequest",
    "RequestLog",
    "ResultCache",
    "key_partition",
    "request_digest",
]


def request_digest(agent_name: str, key: str, spec: ModelSpec, request: LLMRequest) -> str:
    """Digest of everything that determines an answer, per agent and key.

    The key is part of it so that two conversations never share answers.
    Secrets are not (``ModelSpec`` only names the environment variable).
    """
    h = hashlib.sha256()
    for part in (
        agent_name,
        key,
        spec.model,
        repr(sorted(spec.params.items())),
        request.canonical(),
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def key_partition(key: str, partitions: int) -> int:
    """A stable partition for a Flink key (same on every host and Python run)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


ANY_VERSION = "*"
"""A :class:`JournalScope` version that matches every version (read-only use)."""


@dataclass(frozen=True)
class JournalScope:
    """Whose entries these are: a job, an agent, a version."""

    job: str
    agent: str
    version: str

    def label(self) -> str:
        return f"{self.job}/{self.agent}@{self.version}"

    def match_prefix(self) -> str:
        """What the labels this scope answers from start with (the whole label, ``\\0``-ended,
        unless the version is :data:`ANY_VERSION`)."""
        if self.version == ANY_VERSION:
            return f"{self.job}/{self.agent}@"
        return self.label() + "\0"


@dataclass(frozen=True)
class RecordedRequest:
    """One row of a journal's request record (see :meth:`RequestLog.record_request`)."""

    seq: int
    kind: str
    agent: str
    version: str
    key: str
    turn: int
    digest: str
    body: str
    event: str | None
    ts: float
    scope: str = ""
    """The scope label of the journal that recorded it (``job/agent@version``)."""


@runtime_checkable
class ResultCache(Protocol):
    """Results of calls already paid for; used from the operator's event loop.

    ``lookup`` may read storage (it is awaited, so it does not block the loop);
    ``append`` returns once the entry is durable (committed, or acknowledged
    by every in-sync replica): only then may the caller act on the result.
    """

    async def lookup(self, key: str, digest: str) -> LLMResult | None: ...

    async def append(self, key: str, digest: str, result: LLMResult) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RequestLog(Protocol):
    """What each agent sent for each key and turn, in one order per log.

    Rows are recorded under the journal's scope; a scoped journal lists only
    its scope's rows (an unscoped one: every row).
    """

    def record_request(
        self,
        *,
        kind: str,
        agent: str,
        version: str,
        key: str,
        turn: int,
        digest: str,
        body: str,
        event: str | None = None,
    ) -> None: ...

    def recorded_requests(
        self,
        *,
        agent: str | None = None,
        key: str | None = None,
        turn: int | None = None,
        kind: str | None = None,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> list[RecordedRequest]: ...

    def last_request_seq(self) -> int: ...
