"""``AI_TOOL_INVOKE(model, prompt, function_tools MAP, mcp_tools MAP [, options MAP])``.

Confluent's one-shot tool call as an async scalar function: the model is
offered the named tools (the third MAP names tools made by ``CREATE TOOL``,
the fourth names tools of the model's MCP server, ``'mcp.connection'`` on
``CREATE MODEL``; the MAPs' values are descriptions and are not used), the
tool calls it answers with are run once each, and the result is a
``MAP<STRING, MAP<STRING, STRING>>``: tool name -> ``status`` (``OK`` /
``FAILED``) and ``response`` (the tool's JSON result or the error).  A reply
without a tool call gives ``{'model': {'status': 'NO_TOOL_CALL', 'response':
<text>}}``; a failed model call gives NULL.

No journal and no fencing: this is a stateless function, so a job restarted
after a failure may call a side-effecting tool again for the rows it
replays.  Give side-effecting tools to an agent (``AI_RUN_AGENT``) where
tool results are journalled and replays never repeat them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pyflink.table.udf import AsyncScalarFunction

from streaming_agents.agent import LLMRequest, ModelSpec
from streaming_agents.errors import StreamingAgentsError
from streaming_agents.sql import callloop
from streaming_agents.sql.functions import guard_inputs
from streaming_agents.sql.tally import Tally
from streaming_agents.tools import Tool

__all__ = ["tool_invoke_function"]

log = logging.getLogger(__name__)


class ToolInvokeFunction(AsyncScalarFunction):  # type: ignore[misc]
    """``eval(prompt) -> MAP<STRING, MAP<STRING, STRING>>``: one model call, its tool calls."""

    def __init__(
        self,
        name: str,
        model: ModelSpec,
        system_prompt: str,
        tools: tuple[Tool, ...],
        tally: Tally | None = None,
    ) -> None:
        self.tally = tally  # the SQL runner's counts: a row FAILED when its call or a tool failed
        self.name = name
        self.model = model
        self.system_prompt = system_prompt
        self.tools = tools
        self._client: Any = None

    def open(self, function_context: Any) -> None:
        from streaming_agents.llm.litellm_client import LiteLLMClient
        from streaming_agents.llm.throttle import AdaptiveLimiter
        from streaming_agents.runtime import shipped_imports

        shipped_imports.install()  # a later job's shipped copy can import what this one did not
        if not guard_inputs(self):
            log.warning("%s: FLINK-39532 guard not installed; inputs may be mixed up", self.name)
        callloop.acquire()
        self._client = LiteLLMClient(self.model, AdaptiveLimiter(100))

    def close(self) -> None:
        callloop.release()
        if self.tally is not None:
            self.tally.close()

    async def eval(self, prompt: Any) -> Any:
        if prompt is None:
            return None
        out = await callloop.run(self._invoke(str(prompt)))
        if self.tally is not None:
            failed = [n for n, r in (out or {}).items() if r.get("status") == "FAILED"]
            if out is None:
                self.tally.failed("AI_TOOL_INVOKE: the model call failed")
            elif failed:
                self.tally.failed(f"AI_TOOL_INVOKE: tool {failed[0]!r} FAILED")
            else:
                self.tally.ok()
        return out

    async def _invoke(self, prompt: str) -> dict[str, dict[str, str]] | None:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": prompt})
        request = LLMRequest(messages=tuple(messages), tools=tuple(t.schema() for t in self.tools))
        try:
            result = await self._client.complete(request)
        except StreamingAgentsError as exc:
            log.warning("%s: model call failed, returning NULL: %s", self.name, exc)
            return None
        if not result.tool_calls:
            return {"model": {"status": "NO_TOOL_CALL", "response": result.content}}
        by_name = {t.name: t for t in self.tools}
        out: dict[str, dict[str, str]] = {}
        for call in result.tool_calls:
            tool = by_name.get(call["name"])
            if tool is None:
                out[call["name"]] = {"status": "FAILED", "response": "no such tool offered"}
                continue
            try:
                response = await asyncio.to_thread(tool.invoke, call["arguments"] or "{}")
                out[call["name"]] = {"status": "OK", "response": response}
            except StreamingAgentsError as exc:  # e.g. the MCP server cannot be reached
                out[call["name"]] = {"status": "FAILED", "response": json.dumps(str(exc))}
        return out


def tool_invoke_function(
    model: ModelSpec,
    tools: tuple[Tool, ...],
    *,
    name: str,
    system_prompt: str = "",
    tally: Tally | None = None,
) -> Any:
    """The async scalar UDF for one ``AI_TOOL_INVOKE`` call site (``tally``: the runner's)."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    result_type = DataTypes.MAP(
        DataTypes.STRING(), DataTypes.MAP(DataTypes.STRING(), DataTypes.STRING())
    )
    function = ToolInvokeFunction(name, model, system_prompt, tools, tally)
    return udf(function, result_type=result_type, name=name)
