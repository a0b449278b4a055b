"""A replay's journal: answers from production, writes only its own store.

A replay, a deterministic re-run or a shadow run must find every answer
production paid for, yet never write to production's journal (another job's
system of record).  :class:`ReplayJournal` layers two backends:

* ``own`` -- the run's private journal (a SQLite file in the run folder):
  looked up first, and the only one written (results the run paid for and
  its request log, which the divergence report reads);
* ``production`` -- the production journal, opened read-only (SQLite
  ``mode=ro``, or a Kafka reader that produces nothing and creates no topic),
  scoped to production's (job, agent) or to every scope.

Nothing is copied: a Kafka production journal is read where it is, one
partition per key hash, when a key first needs it.  The factory builds this
(:func:`streaming_agents.journal.factory.resolve_journal` for a
:class:`~streaming_agents.journal.factory.JournalSpec` with ``read_from``),
on the worker, like any journal.
"""

from __future__ import annotations

from streaming_agents.agent import LLMResult
from streaming_agents.journal.base import RecordedRequest, RequestLog, ResultCache

__all__ = ["ReplayJournal"]


class ReplayJournal:
    """``own`` first, then ``production`` (read-only); see the module docstring."""

    def __init__(self, own: ResultCache, own_log: RequestLog, production: ResultCache) -> None:
        self.own, self.own_log, self.production = own, own_log, production

    @property
    def production_log(self) -> RequestLog | None:
        """Production's request log, if its backend keeps one."""
        production = self.production
        return production if isinstance(production, RequestLog) else None

    async def lookup(self, key: str, digest: str) -> LLMResult | None:
        found = await self.own.lookup(key, digest)
        if found is not None:
            return found
        return await self.production.lookup(key, digest)

    async def append(self, key: str, digest: str, result: LLMResult) -> None:
        await self.own.append(key, digest, result)

    def close(self) -> None:
        try:
            self.own.close()
        finally:
            self.production.close()

    # --- the request log: the run's own ----------------------------------------

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
    ) -> None:
        self.own_log.record_request(
            kind=kind, agent=agent, version=version, key=key, turn=turn,
            digest=digest, body=body, event=event,
        )  # fmt: skip

    def recorded_requests(
        self,
        *,
        agent: str | None = None,
        key: str | None = None,
        turn: int | None = None,
        kind: str | None = None,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> list[RecordedRequest]:
        return self.own_log.recorded_requests(
            agent=agent, key=key, turn=turn, kind=kind, after_seq=after_seq, upto_seq=upto_seq
        )

    def last_request_seq(self) -> int:
        return self.own_log.last_request_seq()
