"""``AI_COMPLETE``: a stateless LLM completion as an async scalar function.

:func:`completion_function` returns a PyFlink ``AsyncScalarFunction``
(``prompt STRING`` in; ``STRING`` or a typed ``ROW`` out) to register with
``t_env.create_temporary_function``.  Calls go through the same litellm client
as agents (retries, fallbacks, 429 back-off) and, with a journal, a replay
after a failure is answered from it instead of paying again.  A call that
still fails, or a reply that does not fit the output type, yields NULL (the
row is kept; count NULLs to alert).

FLINK-39532 (PyFlink 2.3.0): ``AsyncScalarFunctionOperation`` reads its
input only when the event loop runs the call, from a list the decoder
reuses for the next row, so under concurrency most calls see another row's
arguments (measured: 941 of 1,000 rows wrong).  Work-around, installed by
:func:`guard_inputs` from the function's ``open()``: the operation's queue
``put`` (which runs synchronously in ``process_element``) copies each input
into a FIFO, and the operation's eval hook takes the copies in order; the
event loop starts calls in submission order and each call evaluates its
arguments before its first ``await``, so each call gets its own row.
Flink-side retries of async scalar functions are switched off for these
functions (they would break that order; the client retries itself).
``tests/test_sql_functions.py`` checks every output against its input.

Async scalar functions run only in PyFlink's process mode, and the agent
operator needs thread mode, so ``AI_COMPLETE`` and an agent cannot share a
job (the SQL runner reports it; run them as separate INSERTs).
"""

from __future__ import annotations

import collections
import logging
import sys
from typing import Any

from pydantic import ValidationError
from pyflink.table.udf import AsyncScalarFunction

from streaming_agents.agent import LLMRequest, ModelSpec
from streaming_agents.errors import StreamingAgentsError
from streaming_agents.journal.base import ResultCache, request_digest
from streaming_agents.journal.factory import open_journal
from streaming_agents.sql import callloop
from streaming_agents.sql.tally import Tally
from streaming_agents.sql.typemap import to_pydantic
from streaming_agents.sql.types import SqlType

__all__ = ["completion_function", "guard_inputs"]

log = logging.getLogger(__name__)


def guard_inputs(function: Any) -> bool:
    """Install the FLINK-39532 work-around on the operation running ``function``.

    Call from ``open()``; returns False when no async scalar operation is on
    the call stack (e.g. a future PyFlink calls ``open`` differently).
    """
    try:
        from pyflink.fn_execution.table.async_function.operations import (
            AsyncScalarFunctionOperation,
        )
    except ImportError:
        return False
    frame = sys._getframe(1)
    operation = None
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, AsyncScalarFunctionOperation):
            operation = candidate
            break
        frame = frame.f_back  # type: ignore[assignment]
    if operation is None or getattr(operation, "_sa_guarded", False):
        return operation is not None
    copies: collections.deque[list[Any]] = collections.deque()
    queue, evaluate = operation._queue, operation._eval_func
    put = queue.put

    def put_copy(*args: Any) -> Any:
        copies.append(list(args[-1]))
        return put(*args)

    queue.put = put_copy
    operation._eval_func = lambda _reused: evaluate(copies.popleft())
    operation._retry_enabled = False
    operation._sa_guarded = True
    return True


class CompletionFunction(AsyncScalarFunction):  # type: ignore[misc]
    """``eval(prompt) -> STRING | ROW``; one LLM call per row, many in flight."""

    def __init__(
        self,
        name: str,
        model: ModelSpec,
        system_prompt: str = "",
        output: SqlType | None = None,
        journal: str | None = None,
        capacity: int = 100,
        journal_name: str = "",
        tally: Tally | None = None,
    ) -> None:
        self.tally = tally  # the SQL runner's counts of answered / failed calls
        self.name = name
        self.model = model
        self.system_prompt = system_prompt
        self.output = output
        self.journal = journal  # a URI resolved on the worker by the factory; None: no journal
        self.journal_name = journal_name or name
        self.capacity = capacity
        self._journal: ResultCache = open_journal("none", agent=self.journal_name)
        self._client: Any = None
        self._output_model: Any = None
        self.guarded = False

    def open(self, function_context: Any) -> None:
        from streaming_agents.llm.litellm_client import LiteLLMClient
        from streaming_agents.llm.throttle import AdaptiveLimiter
        from streaming_agents.runtime import shipped_imports

        shipped_imports.install()  # a later job's shipped copy can import what this one did not

        self.guarded = guard_inputs(self)
        if not self.guarded:
            log.warning("%s: FLINK-39532 guard not installed; inputs may be mixed up", self.name)
        callloop.acquire()
        self._client = LiteLLMClient(self.model, AdaptiveLimiter(self.capacity))
        if self.journal:
            self._journal = open_journal(self.journal, agent=self.journal_name)
        if self.output is not None:
            self._output_model = to_pydantic(self.output, "Completion")

    def close(self) -> None:
        self._journal.close()
        callloop.release()
        if self.tally is not None:
            self.tally.close()

    def request(self, prompt: str) -> LLMRequest:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        schema = self._output_model.model_json_schema() if self._output_model else None
        return LLMRequest(messages=tuple(messages), response_schema=schema)

    async def eval(self, prompt: Any) -> Any:
        if prompt is None:
            return None
        value, failure = await callloop.run(self._complete(str(prompt)))
        if self.tally is not None and failure is None:
            self.tally.ok()
        elif self.tally is not None:
            self.tally.failed(failure or "unknown")
        return value

    async def _complete(self, prompt: str) -> tuple[Any, str | None]:
        """One completion, on the shared call loop (:mod:`streaming_agents.sql.callloop`).

        Returns the value and, when the call failed (the value is NULL), why.
        """
        request = self.request(prompt)
        digest = request_digest(f"complete:{self.name}", "", self.model, request)
        result = await self._journal.lookup("", digest)
        if result is None:
            try:
                result = await self._client.complete(request)
            except StreamingAgentsError as exc:
                log.warning("%s: call failed, returning NULL: %s", self.name, exc)
                return None, f"call failed: {type(exc).__name__}: {exc}"
            await self._journal.append("", digest, result)
        if self.output is None:
            return result.content, None
        try:
            data = self._output_model.model_validate_json(result.content).model_dump(mode="json")
            return self.output.with_nullable(True).from_json(data), None
        except (ValidationError, TypeError, ValueError) as exc:
            log.warning("%s: reply does not fit the output type (NULL): %s", self.name, exc)
            return None, f"reply does not fit the output type: {type(exc).__name__}"


def completion_function(
    model: ModelSpec,
    *,
    name: str = "ai_complete",
    system_prompt: str = "",
    output: SqlType | None = None,
    journal: str | None = None,
    capacity: int = 100,
    journal_name: str = "",
    journal_path: str | None = None,
    tally: Tally | None = None,
) -> Any:
    """An async scalar UDF ``f(prompt)`` calling ``model``; register it under ``name``.

    ``output`` (a ROW :class:`SqlType`, e.g. ``from_pydantic(MyModel)`` or
    ``parse_columns("label STRING, score DOUBLE")``) asks for JSON of that
    shape and returns a ROW; without it the reply text.  Concurrency is
    ``table.exec.async-scalar.max-concurrent-operations`` per subtask.
    ``journal``: a journal URI (``sqlite:///path``, ``kafka://bootstrap/topic``,
    ``none``; :mod:`streaming_agents.journal.factory`) answering repeated
    prompts; a SQLite folder holds ``<journal_name or name>.sqlite``.  Without
    it, no journal.  ``journal_path`` (older): a SQLite file, same as
    ``journal='sqlite:///path'``.  ``tally`` (the SQL runner's): where each
    call is counted as answered or failed.
    """
    from pyflink.table.udf import udf

    from streaming_agents.journal.factory import as_journal_uri

    result_type = output.with_nullable(True).data_type() if output is not None else _string_type()
    if journal is None and journal_path:
        journal = as_journal_uri(journal_path)
    function = CompletionFunction(
        name, model, system_prompt, output, journal, capacity, journal_name, tally
    )
    return udf(function, result_type=result_type, name=name)


def _string_type() -> Any:
    from pyflink.table import DataTypes

    return DataTypes.STRING()
