"""Processing one event: step, LLM calls with tools and repairs, reduce.

Runs on the chain runner's event loop.  Every answer (LLM or tool) is looked
up in the journal before it is paid for and recorded before it is used, so a
replay after a failure repeats no call and no side effect whose result was
recorded.  Nothing here raises into Flink: whatever cannot be used becomes a
dead letter with its reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from streaming_agents.agent import Agent, AgentOutput, LLMRequest, LLMResult
from streaming_agents.errors import (
    BudgetExceeded,
    InfrastructureError,
    RuntimeFailure,
    StreamingAgentsError,
)
from streaming_agents.journal.base import request_digest
from streaming_agents.journal.factory import (
    JournalSetting,
    ledger_uri,
    open_ledger,
    request_log,
    resolve_journal,
)
from streaming_agents.journal.ledger import BudgetLimits, Reservation
from streaming_agents.memory import Memory
from streaming_agents.runtime.audit import EventTrace, trace_id_for
from streaming_agents.runtime.events import Envelope, dead_letter
from streaming_agents.runtime.work import Completion, KeyChain, RunnerStats

__all__ = ["EventProcessor", "LLMCall", "ToolLoopExceeded"]

LLMCall = Callable[[LLMRequest], Awaitable[LLMResult]]


class ToolLoopExceeded(RuntimeFailure):
    """The model kept asking for tools past the agent's ``max_tool_iterations``."""


class OutputTooLarge(RuntimeFailure):
    """An output record would be larger than the sink may write (``Limits.max_record_bytes``)."""


def _reason(exc: StreamingAgentsError) -> str:
    if isinstance(exc, ToolLoopExceeded):
        return "tool loop exceeded"
    if isinstance(exc, BudgetExceeded):
        return "over budget"
    if isinstance(exc, InfrastructureError):
        return "tool failed"  # e.g. an MCP server that cannot be reached
    return "llm call failed"


def _assistant_tool_message(result: LLMResult) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": result.content or None,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in result.tool_calls
        ],
    }


def _repair_request(request: LLMRequest, result: LLMResult, exc: Exception) -> LLMRequest:
    """Ask again, showing the model its invalid reply and the validation error."""
    note = (
        "Your previous reply failed validation against the required JSON schema: "
        f"{exc}. Reply again with only JSON that matches the schema."
    )
    messages = (
        *request.messages,
        {"role": "assistant", "content": result.content},
        {"role": "user", "content": note},
    )
    return request.model_copy(update={"messages": messages})


class EventProcessor:
    """Turns one queued event of a key into a :class:`Completion`."""

    def __init__(
        self,
        agent: Agent[Any],
        call: LLMCall,
        journal: JournalSetting,
        *,
        fence_side_effects: bool = False,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        self.agent = agent
        self.fence_side_effects = fence_side_effects
        self.max_record_bytes = max_record_bytes
        self.stats = RunnerStats()
        self._call = call
        # Resolved here, on the worker: a URI in the job names the backend.
        self._journal = resolve_journal(journal, agent=agent.name, version=agent.version)
        self._requests = request_log(self._journal)
        budget = agent.budget
        self.ledger = (
            open_ledger(
                ledger_uri(self._journal, budget.ledger_uri()),
                agent=agent.name,
                window_s=budget.window_s,
            )
            if budget is not None
            else None
        )

    def close(self) -> None:
        self._journal.close()
        if self.ledger is not None:
            self.ledger.close()

    async def process_safely(
        self, chain: KeyChain, envelope: Envelope, memory: Memory
    ) -> tuple[Completion, Memory]:
        """Like ``_process``, but a bug becomes a dead letter, not a dead task."""
        try:
            return await self._process(chain, envelope, memory)
        except Exception as exc:  # noqa: BLE001 - a dying task would stall the key forever
            trace = self._trace(chain, envelope)
            return self._reject("internal error", trace, envelope.get("e"), exc, memory)

    def _trace(self, chain: KeyChain, envelope: Envelope) -> EventTrace:
        agent, source = self.agent, envelope.get("s")
        return EventTrace(
            agent=agent.name,
            version=agent.version,
            key=chain.key,
            trace_id=trace_id_for(agent.name, chain.key, envelope.get("e"), source),
            source=source,
            shadow=self.fence_side_effects,
        )

    async def _process(
        self, chain: KeyChain, envelope: Envelope, memory: Memory
    ) -> tuple[Completion, Memory]:
        agent, event = self.agent, envelope["e"]
        trace = self._trace(chain, envelope)
        try:
            request = agent.step(event, memory)
        except (StreamingAgentsError, ValidationError, ValueError, KeyError, TypeError) as exc:
            return self._reject("step failed", trace, event, exc, memory)
        repairs = 0
        while True:
            try:
                request, result = await self._tool_loop(chain, request, trace)
            except StreamingAgentsError as exc:
                return self._reject(_reason(exc), trace, event, exc, memory)
            try:
                new_memory, outputs = agent.reduce(event, memory, result)
                break
            except (StreamingAgentsError, ValidationError, ValueError, KeyError, TypeError) as exc:
                if repairs >= agent.max_repairs or agent.output_schema is None:
                    payload = {"event": event, "reply": result.content}
                    return self._reject("unusable llm reply", trace, payload, exc, memory)
                repairs += 1
                self.stats.repairs += 1
                request = _repair_request(request, result, exc)
        lines = tuple(
            AgentOutput(
                agent=agent.name,
                version=agent.version,
                key=chain.key,
                input=dict(event),
                output=out,
                turn=new_memory.turn_count,
                usage=trace.usage,
                source=trace.source,
                trace_id=trace.trace_id,
                shadow=trace.shadow,
            ).model_dump_json()
            for out in outputs
        )
        too_large = max((len(line.encode("utf-8", "replace")) for line in lines), default=0)
        if too_large > self.max_record_bytes:
            error = OutputTooLarge(
                f"an output record of {too_large} bytes > {self.max_record_bytes}"
            )
            return self._reject("output too large", trace, event, error, memory)
        trace.decision("output", turn=new_memory.turn_count)
        completion = Completion(memory_json=new_memory.dump(), outputs=lines, audit=trace.lines())
        return completion, new_memory

    async def _tool_loop(
        self, chain: KeyChain, request: LLMRequest, trace: EventTrace
    ) -> tuple[LLMRequest, LLMResult]:
        """Call the model; run the tools it asks for; repeat until it answers."""
        agent = self.agent
        for _ in range(agent.max_tool_iterations + 1):
            result = await self._answer(chain, request, trace)
            if not result.tool_calls:
                return request, result
            messages = [*request.messages, _assistant_tool_message(result)]
            for call in result.tool_calls:
                output = await self._run_tool(chain, request, call, trace)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
            request = request.model_copy(update={"messages": tuple(messages)})
        raise ToolLoopExceeded(
            f"the model still asked for tools after {agent.max_tool_iterations} iterations"
        )

    async def _answer(self, chain: KeyChain, request: LLMRequest, trace: EventTrace) -> LLMResult:
        """The journalled answer to ``request``, or a new call (recorded before use)."""
        digest = request_digest(self.agent.name, chain.key, self.agent.model, request)
        result = await self._lookup(chain, digest)
        if result is not None:
            self.stats.journal_hits += 1
            trace.llm_call(digest, result, "journal")
            return result
        reservation = await self._reserve()
        try:
            result = await self._timed_call(chain, request)
        except StreamingAgentsError as exc:
            trace.llm_failure(digest, f"{type(exc).__name__}: {exc}")
            await self._settle(reservation, None)
            raise
        await self._append(chain, digest, result)
        self._record(chain, "llm", digest, request.canonical())
        await self._settle(reservation, result)
        trace.llm_call(digest, result, "called")
        return result

    async def _lookup(self, chain: KeyChain, digest: str) -> LLMResult | None:
        """The journalled result, or ``None`` (also when the journal cannot be read)."""
        try:
            return await self._journal.lookup(chain.key, digest)
        except InfrastructureError:
            logging.getLogger(__name__).warning("journal lookup failed", exc_info=True)
            return None

    async def _append(self, chain: KeyChain, digest: str, result: LLMResult) -> None:
        """Record a result, acknowledged before it is used.

        A journal that cannot take it (its broker down past the producer's
        delivery timeout) costs a call paid again after a failure, not the
        event: the result is used anyway.
        """
        try:
            await self._journal.append(chain.key, digest, result)
        except InfrastructureError:
            logging.getLogger(__name__).warning("journal append failed", exc_info=True)

    def _estimate(self) -> tuple[int, float]:
        """What a call reserves: the budget's figures, else this subtask's average call."""
        budget, stats = self.agent.budget, self.stats
        assert budget is not None
        calls = max(1, stats.llm_calls)
        tokens = budget.reserve_tokens or max(
            1, round((stats.prompt_tokens + stats.completion_tokens) / calls)
        )
        cost = budget.reserve_cost_usd
        cost = stats.cost_usd / calls if cost is None else cost
        # capped at the budget, so an empty window always admits one call
        if budget.max_tokens is not None:
            tokens = min(tokens, budget.max_tokens)
        if budget.max_cost_usd is not None:
            cost = min(cost, budget.max_cost_usd)
        return tokens, cost

    async def _reserve(self) -> Reservation | None:
        """Reserve a call in the ledger; wait for the next window (``park``) or refuse."""
        budget, ledger = self.agent.budget, self.ledger
        if budget is None or ledger is None:
            return None
        limits = BudgetLimits(budget.max_tokens, budget.max_cost_usd)
        while True:
            tokens, cost = self._estimate()
            granted = await ledger.reserve(self.agent.name, budget.window(), limits, tokens, cost)
            if granted is not None:
                return granted
            if budget.on_exceeded == "dead_letter":
                raise BudgetExceeded(f"budget of agent {self.agent.name!r} spent for this window")
            self.stats.parked += 1
            await asyncio.sleep(min(5.0, budget.seconds_to_next_window()))

    async def _settle(self, reservation: Reservation | None, result: LLMResult | None) -> None:
        if reservation is None or self.ledger is None:
            return
        tokens = 0 if result is None else result.prompt_tokens + result.completion_tokens
        cost = 0.0 if result is None else result.cost_usd
        await self.ledger.settle(reservation, tokens, cost)

    async def _run_tool(
        self, chain: KeyChain, request: LLMRequest, call: dict[str, Any], trace: EventTrace
    ) -> str:
        """Run one tool call; its result is journalled so recovery never repeats it."""
        agent = self.agent
        tool = agent.tool(str(call["name"]))
        if tool is None:
            trace.tool_call(str(call["name"]), False, "unknown tool")
            return json.dumps({"error": f"no tool named {call['name']!r}"})
        marker = LLMRequest(
            messages=(*request.messages, {"role": "tool-call", "content": json.dumps(call)})
        )
        digest = request_digest(agent.name, chain.key, agent.model, marker)
        recorded = await self._lookup(chain, digest)
        # A fenced run (replay, shadow) still takes a recorded result: that runs
        # nothing and keeps a re-run identical to the run it replays.
        fenced = tool.side_effecting and self.fence_side_effects
        if recorded is not None:
            self.stats.journal_hits += 1
            trace.tool_call(tool.name, tool.side_effecting, "journal")
            if fenced:
                note = json.dumps({"call": call, "outcome": "replayed"})
                self._record(chain, "tool", digest, note)
            return recorded.content
        if fenced:
            self.stats.tools_fenced += 1
            trace.tool_call(tool.name, True, "fenced")
            self._record(chain, "tool", digest, json.dumps({"call": call, "outcome": "fenced"}))
            return json.dumps({"fenced": True, "note": "side effects are off in this run"})
        self.stats.tool_calls += 1
        output = await asyncio.get_running_loop().run_in_executor(
            None, tool.invoke, str(call.get("arguments") or "{}")
        )
        await self._append(chain, digest, LLMResult(content=output, model=f"tool:{tool.name}"))
        trace.tool_call(tool.name, tool.side_effecting, "ran")
        return output

    def _record(self, chain: KeyChain, kind: str, digest: str, body: str) -> None:
        """Add a request to the journal's request record, if it keeps one (replays read it)."""
        if self._requests is None:
            return
        try:
            event = chain.todo[0]["e"] if chain.todo else None
            self._requests.record_request(
                kind=kind,
                agent=self.agent.name,
                version=self.agent.version,
                key=chain.key,
                turn=chain.memory.turn_count + 1,
                digest=digest,
                body=body,
                event=None if event is None else json.dumps(event, sort_keys=True, default=str),
            )
        except Exception:  # a debugging record must never fail an event
            logging.getLogger(__name__).warning("request record failed", exc_info=True)

    async def _timed_call(self, chain: KeyChain, request: LLMRequest) -> LLMResult:
        stats = self.stats
        chain.call_started = time.monotonic()
        try:
            result = await self._call(request)
        finally:
            chain.call_started = None
        stats.llm_calls += 1
        stats.latency_ms_total += result.latency_ms
        stats.prompt_tokens += result.prompt_tokens
        stats.completion_tokens += result.completion_tokens
        stats.cost_usd += result.cost_usd
        return result

    def _reject(
        self, reason: str, trace: EventTrace, payload: Any, exc: Exception, memory: Memory
    ) -> tuple[Completion, Memory]:
        self.stats.dead_lettered += 1
        record = dead_letter(
            reason,
            trace.key,
            payload,
            f"{type(exc).__name__}: {exc}",
            source=trace.source,
            agent=trace.agent,
            version=trace.version,
            max_bytes=self.max_record_bytes,
        )
        trace.decision("dead_letter", reason=reason)
        completion = Completion(memory_json=memory.dump(), dead_letter=record, audit=trace.lines())
        return completion, memory
