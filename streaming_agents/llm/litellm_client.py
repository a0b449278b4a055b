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
from streaming_agents.llm.throttle import AdaptiveLimiter

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
        self,
        spec: ModelSpec,
        limiter: AdaptiveLimiter,
        *,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        rate_limit_patience_s: float = 600.0,
    ):
        self.spec = spec
        self.limiter = limiter
        self.rate_limit_patience_s = rate_limit_patience_s
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
            # We run tools ourselves; litellm's MCP gateway (which needs the
            # optional `mcp` package) must not intercept them.
            kwargs["_skip_mcp_handler"] = True
        return kwargs

    async def complete(self, request: LLMRequest) -> LLMResult:
        """One logical call: retries with backoff, then the fallbacks, in order.

        Rate limits (429) are not counted against ``num_retries``: they shrink
        the limiter and wait ``Retry-After``, for up to ``rate_limit_patience_s``
        in all, so a 429 storm slows the job down instead of failing events.
        """
        if self._litellm is None:
            self._litellm = import_litellm()
        litellm = self._litellm
        transient = (
            litellm.Timeout,
            litellm.APIConnectionError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.APIError,
        )
        last: Exception | None = None
        for model in (self.spec.model, *self.spec.fallbacks):
            attempt, throttled_s = 0, 0.0
            while attempt <= self.spec.num_retries:
                started = time.perf_counter()
                try:
                    async with self.limiter.slot():
                        response = await litellm.acompletion(**self._kwargs(request, model))
                except litellm.RateLimitError as exc:
                    last = exc
                    self.stats.rate_limited += 1
                    self.limiter.rate_limited()
                    delay = _retry_after_s(exc) or self._backoff(attempt + 1)
                    throttled_s += delay
                    if throttled_s > self.rate_limit_patience_s:
                        break
                    await asyncio.sleep(delay * random.uniform(1.0, 1.2))
                    continue
                except transient as exc:
                    last = exc
                    attempt += 1
                    if attempt <= self.spec.num_retries:
                        self.stats.retries += 1
                        await asyncio.sleep(self._backoff(attempt) * random.uniform(0.5, 1.0))
                    continue
                except litellm.BadRequestError as exc:
                    last = exc
                    break
                self.limiter.succeeded()
                self.stats.calls += 1
                return self._result(response, model, (time.perf_counter() - started) * 1000)
        self.stats.failures += 1
        raise LLMCallError(
            f"LLM call failed after retries and fallbacks: {type(last).__name__}: {last}"
        )

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1)))

    def _result(self, response: Any, model: str, latency_ms: float) -> LLMResult:
        message = response.choices[0].message
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        tool_calls = tuple(
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in (message.tool_calls or ())
        )
        # litellm prices every response it knows the model of; unknown models cost 0.
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = float(hidden.get("response_cost") or 0.0)
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
