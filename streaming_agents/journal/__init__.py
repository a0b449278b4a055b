"""The agents' system of record outside Flink state: journal and budget ledgers.

:mod:`~streaming_agents.journal.base` defines the journal's two roles (result
cache, request log); :mod:`~streaming_agents.journal.ledger` the budget
ledger.  Backends live one per module (``sqlite``, ``kafka``, ``null``,
``ledger_sqlite``, ``ledger_kafka``) and only
:mod:`~streaming_agents.journal.factory` chooses one, from a URI.
"""
