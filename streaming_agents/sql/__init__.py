"""Agents in the Table API and in Flink SQL (see docs/sql.md).

* :func:`agent_table` -- run an :class:`~streaming_agents.Agent` over a ``Table``
  (memory per key in keyed state, exactly-once), get a typed ``Table`` back.
* :func:`completion_function` -- ``AI_COMPLETE`` as an async scalar UDF.
* :func:`run_sql_script` / :class:`SqlSession` -- scripts with ``CREATE MODEL``,
  ``CREATE TOOL``, ``CREATE AGENT`` and ``AI_RUN_AGENT(...)`` next to Flink SQL.
* :func:`from_pydantic`, :func:`parse_columns`, :class:`SqlType` -- column types.

Names are imported on first use, so ``import streaming_agents.sql`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SqlJobFailed",
    "SqlScriptError",
    "SqlSession",
    "SqlType",
    "agent_table",
    "completion_function",
    "from_pydantic",
    "parse_columns",
    "parse_type",
    "run_sql_script",
]

_WHERE = {
    "SqlJobFailed": "session",
    "SqlScriptError": "lexer",
    "SqlSession": "session",
    "SqlType": "types",
    "agent_table": "table",
    "completion_function": "functions",
    "from_pydantic": "typemap",
    "parse_columns": "typeparse",
    "parse_type": "typeparse",
    "run_sql_script": "session",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'streaming_agents.sql' has no attribute {name!r}")
    return getattr(importlib.import_module(f"streaming_agents.sql.{module}"), name)
