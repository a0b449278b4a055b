"""The user-facing agent definition.

An agent's logic is split the way event-sourced agents are:

* ``step(event, memory) -> LLMRequest`` -- pure: what to ask the model.
* ``reduce(event, memory, result) -> (memory, outputs)`` -- pure: what the
  answer means for memory and what to emit.

Neither may have side effects.  After a failure Flink rolls state back to the
last checkpoint and replays input; the runtime then re-runs ``step`` and
``reduce`` and answers the repeated LLM calls from the journal, so purity is
what makes recovery and replay exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streaming_agents.errors import ConfigError
from streaming_agents.llm.budget import Budget
from streaming_agents.memory import ConversationMemory, Memory, MemoryPolicy
from streaming_agents.secret_refs import check_secret_ref
from streaming_agents.tools import Tool

__all__ = [
    "Agent",
    "AgentOutput",
    "CircuitBreaker",
    "LLMRequest",
    "LLMResult",
    "ModelSpec",
    "Usage",
]

MemoryT = TypeVar("MemoryT", bound=Memory)
Event = Mapping[str, Any]


class ModelSpec(BaseModel):
    """Which model to call through litellm, and how.

    Secrets are never stored here, only references, resolved by the worker
    at call time (see :mod:`streaming_agents.secret_refs`), so keys stay out
    of the job graph, state, checkpoints, logs and topics:
    ``api_key_ref`` -- ``file:/path`` (a secret file of this agent's own: the
    key is then in no process's environment), ``env:NAME`` or a Kafka-style
    ``${file:/path:key}``; ``api_key_env`` -- the older spelling of
    ``env:NAME``.  Give each agent its own reference and each agent's calls
    carry its own key only.
    """

    model_config = ConfigDict(frozen=True)

    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    api_key_ref: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)
    num_retries: int = Field(default=2, ge=0)
    fallbacks: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_key_reference(self) -> ModelSpec:
        if self.api_key_env and self.api_key_ref:
            raise ConfigError("give the model key as api_key_ref or api_key_env, not both")
        if self.api_key_ref:
            check_secret_ref(self.api_key_ref, f"api_key_ref of model {self.model!r}")
        return self

    def key_ref(self) -> str | None:
        """The reference of the model's API key (``env:NAME`` for ``api_key_env``)."""
        if self.api_key_ref:
            return self.api_key_ref
        return f"env:{self.api_key_env}" if self.api_key_env else None


class CircuitBreaker(BaseModel):
    """Pause a key that sends events faster than ``max_events`` per ``per_seconds``.

    Events over the rate are dead-lettered with reason ``circuit open`` (kept,
    never dropped) and reported on the audit output; the key resumes once its
    rate falls below the limit.  A key looping on tools is stopped by the
    agent's ``max_tool_iterations`` (reason ``tool loop exceeded``).
    """

    model_config = ConfigDict(frozen=True)

    max_events: int = Field(ge=1)
    per_seconds: float = Field(gt=0)


class LLMRequest(BaseModel):
    """One chat completion request, as data (so it can be digested and journalled)."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[dict[str, Any], ...]
    response_schema: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] = ()

    def canonical(self) -> str:
        """Stable JSON of everything that determines the answer."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class LLMResult(BaseModel):
    """The model's answer, as journalled: replaying it must be indistinguishable."""

    model_config = ConfigDict(frozen=True)

    content: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


class Usage(BaseModel):
    """What answering one event cost, summed over its LLM calls (tool rounds, repairs).

    Taken from the recorded results, so a replay answered by the journal
    reports the same figures as the original run.
    """

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    model: str = ""

    def add(self, result: LLMResult) -> None:
        self.llm_calls += 1
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.cost_usd += result.cost_usd
        self.latency_ms += result.latency_ms
        self.model = result.model or self.model


class AgentOutput(BaseModel):
    """What the agent operator emits for each event it consumed."""

    agent: str
    version: str
    key: str
    input: dict[str, Any]
    output: Any
    turn: int
    usage: Usage = Field(default_factory=Usage)
    source: dict[str, Any] | None = None
    trace_id: str = ""
    shadow: bool = False


def _default_step(agent: Agent[Any], event: Event, memory: Memory) -> LLMRequest:
    messages: list[dict[str, Any]] = []
    if agent.system_prompt:
        messages.append({"role": "system", "content": agent.system_prompt})
    if isinstance(memory, ConversationMemory):
        messages.extend(memory.as_messages())
    messages.append({"role": "user", "content": agent.render_prompt(event)})
    schema = agent.output_schema.model_json_schema() if agent.output_schema else None
    tools = tuple(t.schema() for t in agent.tools)
    return LLMRequest(messages=tuple(messages), response_schema=schema, tools=tools)


def _default_reduce(
    agent: Agent[Any], event: Event, memory: Memory, result: LLMResult
) -> tuple[Memory, list[Any]]:
    output: Any = result.content
    if agent.output_schema is not None:
        output = agent.output_schema.model_validate_json(result.content).model_dump(mode="json")
    if isinstance(memory, ConversationMemory):
        memory = memory.with_turn(agent.render_prompt(event), result.content)
    else:
        memory = memory.model_copy(update={"turn_count": memory.turn_count + 1})
    return memory, [output]


StepFn = Callable[[Event, MemoryT], LLMRequest]
ReduceFn = Callable[[Event, MemoryT, LLMResult], tuple[MemoryT, list[Any]]]


@dataclass(frozen=True)
class Agent(Generic[MemoryT]):
    """An LLM agent: identity, model, prompts, memory and its pure logic.

    ``prompt`` is a ``str.format`` template over the event's fields (and
    ``{event}`` for the whole event as JSON).  ``step``/``reduce`` replace
    the defaults, which keep a conversation in :class:`ConversationMemory`
    and emit the reply (validated against ``output_schema`` when given).
    ``secrets`` maps the secret names its tools declare to references
    (``{"crm_token": "file:/run/secrets/crm"}``); each tool is bound to the
    names it declared only (:meth:`Tool.bind_secrets`).
    """

    name: str
    version: str
    model: ModelSpec
    system_prompt: str = ""
    prompt: str = "{event}"
    memory: type[MemoryT] = ConversationMemory  # type: ignore[assignment]
    policy: MemoryPolicy = field(default_factory=MemoryPolicy)
    output_schema: type[BaseModel] | None = None
    step_fn: StepFn[MemoryT] | None = None
    reduce_fn: ReduceFn[MemoryT] | None = None
    tools: tuple[Tool, ...] = ()
    max_tool_iterations: int = 5
    max_repairs: int = 1
    budget: Budget | None = None
    breaker: CircuitBreaker | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.version:
            raise ConfigError("an Agent needs a non-empty name and version")
        if len({t.name for t in self.tools}) != len(self.tools):
            raise ConfigError(f"agent {self.name!r} has two tools with the same name")
        refs = {
            name: check_secret_ref(ref, f"secret {name!r} of agent {self.name!r}")
            for name, ref in dict(self.secrets).items()
        }
        object.__setattr__(self, "secrets", refs)
        owner = f"agent {self.name!r}"
        object.__setattr__(self, "tools", tuple(t.bind_secrets(refs, owner) for t in self.tools))
        if not issubclass(self.memory, Memory):
            raise ConfigError(f"memory must subclass streaming_agents.Memory, got {self.memory!r}")

    def tool(self, name: str) -> Tool | None:
        """The tool called ``name``, if the agent has it."""
        return next((t for t in self.tools if t.name == name), None)

    def render_prompt(self, event: Event) -> str:
        """The user message for ``event``."""
        try:
            return self.prompt.format(event=json.dumps(event, sort_keys=True), **event)
        except (KeyError, IndexError) as exc:
            raise ConfigError(
                f"prompt of agent {self.name!r} needs field {exc} in the event"
            ) from exc

    def step(self, event: Event, memory: MemoryT) -> LLMRequest:
        """Turn (event, memory) into the LLM request. Pure."""
        if self.step_fn is not None:
            return self.step_fn(event, memory)
        return _default_step(self, event, memory)

    def reduce(self, event: Event, memory: MemoryT, result: LLMResult) -> tuple[MemoryT, list[Any]]:
        """Turn (event, memory, result) into new memory and outputs. Pure."""
        if self.reduce_fn is not None:
            new_memory, outputs = self.reduce_fn(event, memory, result)
        else:
            new_memory, outputs = _default_reduce(self, event, memory, result)  # type: ignore[assignment]
        return new_memory.bounded(self.policy), outputs
