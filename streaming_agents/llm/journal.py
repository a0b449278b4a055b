"""The LLM journal's public names (kept where users import them from).

The journal lives in :mod:`streaming_agents.journal`: its roles are protocols
in :mod:`streaming_agents.journal.base`, backends are chosen by
:func:`streaming_agents.journal.factory.open_journal` from a URI.
``Journal`` is the result-cache protocol the agent operator uses;
``SqliteJournal`` and ``NullJournal`` stay importable from here for code that
builds one directly.
"""

from __future__ import annotations

from streaming_agents.journal.base import RecordedRequest, ResultCache, request_digest
from streaming_agents.journal.factory import NullJournal, SqliteJournal

__all__ = ["Journal", "NullJournal", "RecordedRequest", "SqliteJournal", "request_digest"]

Journal = ResultCache
