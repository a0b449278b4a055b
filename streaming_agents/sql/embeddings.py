"""``'task' = 'embedding'`` models: text in, the embeddings API's vector out (``ARRAY<FLOAT>``).

:func:`embedding_function` returns an async scalar UDF calling
``litellm.aembedding`` (``POST /embeddings`` of the provider), used for
``AI_EMBEDDING(model, text)`` and ``ML_PREDICT(model, text)`` when the model
is an embedding model.  Like ``AI_COMPLETE`` it runs in PyFlink's process
mode with the FLINK-39532 input guard; a call that still fails after the
model's retries gives NULL (the row is kept).  No journal: an embedding is
cheap and the same text gives the same vector, so a replay simply asks again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from pyflink.table.udf import AsyncScalarFunction

from streaming_agents.agent import ModelSpec
from streaming_agents.errors import ConfigError
from streaming_agents.sql import callloop
from streaming_agents.sql.functions import guard_inputs
from streaming_agents.sql.tally import Tally

__all__ = ["embedding_function"]

log = logging.getLogger(__name__)

_PASSED_PARAMS = ("dimensions",)


class EmbeddingFunction(AsyncScalarFunction):  # type: ignore[misc]
    """``eval(text) -> ARRAY<FLOAT>``; one embeddings call per row, many in flight."""

    def __init__(self, name: str, model: ModelSpec, tally: Tally | None = None) -> None:
        self.tally = tally  # the SQL runner's counts of answered / failed calls
        self.name = name
        self.model = model
        self.guarded = False

    def open(self, function_context: Any) -> None:
        from streaming_agents.runtime import shipped_imports

        shipped_imports.install()  # a later job's shipped copy can import what this one did not
        self.guarded = guard_inputs(self)
        if not self.guarded:
            log.warning("%s: FLINK-39532 guard not installed; inputs may be mixed up", self.name)
        callloop.acquire()

    def close(self) -> None:
        callloop.release()
        if self.tally is not None:
            self.tally.close()

    def _kwargs(self, text: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model.model,
            "input": [text],
            "timeout": self.model.timeout_s,
            **{k: v for k, v in self.model.params.items() if k in _PASSED_PARAMS},
        }
        if self.model.api_base:
            kwargs["api_base"] = self.model.api_base
        if self.model.api_key_env:
            key = os.environ.get(self.model.api_key_env)
            if key is None:
                raise ConfigError(
                    f"environment variable {self.model.api_key_env} (the API key) is not set"
                )
            kwargs["api_key"] = key
        return kwargs

    async def eval(self, text: Any) -> Any:
        if text is None:
            return None
        vector = await callloop.run(self._embed(str(text)))
        if self.tally is not None and vector is not None:
            self.tally.ok()
        elif self.tally is not None:
            self.tally.failed(f"embeddings call failed ({self.model.model})")
        return vector

    async def _embed(self, text: str) -> Any:
        """One embeddings call (with retries), on the shared call loop."""
        from streaming_agents.llm.litellm_client import import_litellm

        litellm = import_litellm()
        kwargs = self._kwargs(text)
        last = "no attempt"
        for attempt in range(self.model.num_retries + 1):
            try:
                response = await litellm.aembedding(**kwargs)
                item = response.data[0]
                vector = item["embedding"] if isinstance(item, dict) else item.embedding
                return [float(x) for x in vector]
            except Exception as exc:  # noqa: BLE001 - provider errors of every kind: NULL, logged
                last = f"{type(exc).__name__}: {exc}"
                if attempt < self.model.num_retries:
                    await asyncio.sleep(0.5 * 2**attempt)  # back-off before the retry
        log.warning("%s: embeddings call failed, returning NULL: %s", self.name, last)
        return None


def embedding_function(
    model: ModelSpec, *, name: str = "ai_embedding", tally: Tally | None = None
) -> Any:
    """An async scalar UDF ``f(text) -> ARRAY<FLOAT>`` calling ``model``'s embeddings API.

    ``tally`` (the SQL runner's): where each call is counted as answered or failed.
    """
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    return udf(
        EmbeddingFunction(name, model, tally),
        result_type=DataTypes.ARRAY(DataTypes.FLOAT()),
        name=name,
    )
