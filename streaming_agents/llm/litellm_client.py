"""The only module that talks to litellm.

``LiteLLMClient.complete`` makes one logical call: it retries transient
failures itself (litellm's and openai's own retries are switched off, so a
retry is counted once and honours ``Retry-After``), walks the model's
fallback list, and returns an :class:`LLMResult` with usage and cost.
Nothing here touches Flink; the operator calls it from its event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from streaming_agents.agent import LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import ConfigError, LLMCallError

__all__ = ["CallStats", "LiteLLMClient", "import_litellm"]

log = logging.getLogger(__name__)


def import_litellm() -> Any:
    """Import litellm without network access at import time and with quiet logs."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    return litellm


@dataclass
class CallStats:
    """Counters the operator copies into Flink metrics."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def _retry_after_s(exc: Exception) -> float | None:
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LiteLLMClient:
    """Async chat completions through ``litellm.acompletion``."""

    def __init__(
        self, spec: ModelSpec, *, backoff_base_s: float = 0.5, backoff_max_s: float = 20.0
    ):
        self.spec = spec
        self.stats = CallStats()
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._litellm: Any = None

    def _kwargs(self, request: LLMRequest, model: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(self.spec.params)
        kwargs.update(
            model=model,
            messages=list(request.messages),
            timeout=self.spec.timeout_s,
            num_retries=0,
            max_retries=0,
        )
        if self.spec.api_base:
            kwargs["api_base"] = self.spec.api_base
        if self.spec.api_key_env:
            key = os.environ.get(self.spec.api_key_env)
            if key is None:
                raise ConfigError(
                    f"environment variable {self.spec.api_key_env} (the API key) is not set"
                )
            kwargs["api_key"] = key
        if request.response_schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.response_schema},
            }
        if request.tools:
            kwargs["tools"] = list(request.tools)
        return kwargs

    async def complete(self, request: LLMRequest) -> LLMResult:
        """One logical call: retries with backoff, then the fallbacks, in order."""
        if self._litellm is None:
            self._litellm = import_litellm()
        litellm = self._litellm
        transient = (
            litellm.RateLimitError,
            litellm.Timeout,
            litellm.APIConnectionError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.APIError,
        )
        last: Exception | None = None
        for model in (self.spec.model, *self.spec.fallbacks):
            for attempt in range(self.spec.num_retries + 1):
                if attempt:
                    self.stats.retries += 1
                started = time.perf_counter()
                try:
                    response = await litellm.acompletion(**self._kwargs(request, model))
                except transient as exc:
                    last = exc
                    delay = min(self._backoff_max_s, self._backoff_base_s * 2**attempt)
                    if isinstance(exc, litellm.RateLimitError):
                        self.stats.rate_limited += 1
                        delay = _retry_after_s(exc) or delay
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    continue
                except litellm.BadRequestError as exc:
                    last = exc
                    break
                self.stats.calls += 1
                return self._result(response, model, (time.perf_counter() - started) * 1000)
        self.stats.failures += 1
        raise LLMCallError(
            f"LLM call failed after retries and fallbacks: {type(last).__name__}: {last}"
        )

    def _result(self, response: Any, model: str, latency_ms: float) -> LLMResult:
        message = response.choices[0].message
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        tool_calls = tuple(
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in (message.tool_calls or ())
        )
        try:
            cost = float(self._litellm.completion_cost(completion_response=response))
        except Exception:  # noqa: BLE001 - unknown models have no price; cost is then 0
            cost = 0.0
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        self.stats.cost_usd += cost
        return LLMResult(
            content=message.content or "",
            tool_calls=tool_calls,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            latency_ms=latency_ms,
        )
