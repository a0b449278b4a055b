"""Agents defined in SQL: the prompt comes from a column, the system prompt from ``CREATE AGENT``.

``AI_RUN_AGENT(agent, prompt, key)`` hands the agent operator events with the
row's columns plus :data:`PROMPT_FIELD` (the prompt expression's value) and
:data:`KEY_FIELD`.  The step below sends the system prompt, the key's
conversation so far and the prompt; the reduce validates typed output and
records the turn.  Without a key each event is its own conversation
(``stateless``): memory is neither read nor written.
"""

from __future__ import annotations

import importlib
import json
import re
import site
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streaming_agents.agent import Agent, LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import ConfigError
from streaming_agents.memory import ConversationMemory, MemoryPolicy
from streaming_agents.tools import Tool

__all__ = [
    "KEY_FIELD",
    "PROMPT_FIELD",
    "SqlAgentStep",
    "parse_duration",
    "resolve_callable",
    "sql_agent",
]

PROMPT_FIELD = "sa__prompt"
KEY_FIELD = "sa__key"


@dataclass(frozen=True)
class SqlAgentStep:
    """``step`` and ``reduce`` of a SQL-defined agent (picklable, pure)."""

    system_prompt: str
    tools: tuple[dict[str, Any], ...] = ()
    schema: dict[str, Any] | None = None
    output_model: type[BaseModel] | None = field(default=None, compare=False)
    stateless: bool = False

    def step(self, event: Any, memory: ConversationMemory) -> LLMRequest:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if not self.stateless:
            messages.extend(memory.as_messages())
        messages.append({"role": "user", "content": _prompt(event)})
        return LLMRequest(messages=tuple(messages), response_schema=self.schema, tools=self.tools)

    def reduce(
        self, event: Any, memory: ConversationMemory, result: LLMResult
    ) -> tuple[ConversationMemory, list[Any]]:
        output: Any = result.content
        if self.output_model is not None:
            parsed = self.output_model.model_validate_json(result.content)
            output = parsed.model_dump(mode="json")
        if self.stateless:
            return memory, [output]
        return memory.with_turn(_prompt(event), result.content), [output]


def _prompt(event: Any) -> str:
    value = event.get(PROMPT_FIELD)
    if value is None:
        raise ValueError("the prompt is NULL")
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def sql_agent(
    name: str,
    model: ModelSpec,
    *,
    system_prompt: str = "",
    tools: tuple[Tool, ...] = (),
    output_model: type[BaseModel] | None = None,
    stateless: bool = False,
    version: str = "1",
    max_turns: int | None = 20,
    ttl_seconds: int | None = None,
    max_tool_iterations: int = 10,
    max_repairs: int = 1,
) -> Agent[Any]:
    """An :class:`Agent` whose user message is the row's prompt column."""
    logic = SqlAgentStep(
        system_prompt=system_prompt,
        tools=tuple(t.schema() for t in tools),
        schema=output_model.model_json_schema() if output_model is not None else None,
        output_model=output_model,
        stateless=stateless,
    )
    if stateless:
        # Keys are derived from the prompt: keep their (unused) memory short-lived.
        policy = MemoryPolicy(max_turns=1, ttl_seconds=ttl_seconds or 3600)
    else:
        policy = MemoryPolicy(max_turns=max_turns, ttl_seconds=ttl_seconds)
    return Agent(
        name=name,
        version=version,
        model=model,
        system_prompt=system_prompt,
        prompt="{" + PROMPT_FIELD + "}",
        policy=policy,
        output_schema=output_model,
        step_fn=logic.step,
        reduce_fn=logic.reduce,  # type: ignore[arg-type]
        tools=tools,
        max_tool_iterations=max_tool_iterations,
        max_repairs=max_repairs,
    )


def parse_duration(text: str) -> int:
    """Seconds in ``'3600'``, ``'30 min'``, ``'12 h'``, ``'7 d'``, ``'90000 ms'`` (at least 1)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-z]*)\s*", text.lower())
    units = {"": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60,
             "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400,
             "days": 86400}  # fmt: skip
    if match is not None and match.group(2) in ("ms", "milli", "millis", "milliseconds"):
        return max(1, int(match.group(1)) // 1000)
    if match is None or match.group(2) not in units:
        raise ConfigError(f"not a duration: {text!r} (e.g. '3600', '30 min', '7 d')")
    return int(match.group(1)) * units[match.group(2)]


def resolve_callable(path: str, base_dir: Path | None) -> Callable[..., Any] | Tool | None:
    """Import ``module.attr``; modules outside site-packages are pickled by value."""
    import cloudpickle  # type: ignore[import-untyped]

    module_name, _, attr = path.rpartition(".")
    if not module_name:
        return None
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    target = getattr(module, attr, None)
    target = getattr(target, "_func", target)  # a PyFlink udf(...) wrapper
    if target is None or not (callable(target) or isinstance(target, Tool)):
        return None
    location = str(getattr(module, "__file__", "") or "")
    installed = [*site.getsitepackages(), site.getusersitepackages(), sys.prefix, sys.base_prefix]
    own = module_name.split(".")[0] == "streaming_agents"
    if location and not own and not any(location.startswith(p) for p in installed):
        cloudpickle.register_pickle_by_value(module)  # workers need not import it
    return target  # type: ignore[no-any-return]
