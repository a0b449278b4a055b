"""The only module that talks to litellm.

``LiteLLMClient.complete`` makes one logical call: it retries transient
failures itself (litellm's and openai's own retries are switched off, so a
retry is counted once and honours ``Retry-After``), walks the model's
fallback list, and returns an :class:`LLMResult` with usage and cost.
Nothing here touches Flink; the operator calls it from its event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from streaming_agents.agent import LLMRequest, LLMResult, ModelSpec
from streaming_agents.errors import ConfigError, LLMCallError
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.secret_refs import resolve_secret, secret_visible

__all__ = [
    "Attempt",
    "CallStats",
    "LiteLLMClient",
    "Transport",
    "attempt_call",
    "import_litellm",
    "missing_model_environment",
    "new_call_loop",
    "take_worker_key",
]

log = logging.getLogger(__name__)

# In the kwargs sent to a worker process: the *name* of the API key's variable
# (``api_key_env``) or the key's reference (``api_key_ref``), never the key.
API_KEY_ENV_ARG = "_sa_api_key_env"
API_KEY_REF_ARG = "_sa_api_key_ref"


def take_worker_key(kwargs: dict[str, Any]) -> None:
    """In a call worker: replace the key's name or reference in ``kwargs`` by the key."""
    key_env = kwargs.pop(API_KEY_ENV_ARG, None)
    key_ref = kwargs.pop(API_KEY_REF_ARG, None)
    if key_env is not None:
        kwargs["api_key"] = os.environ.get(key_env, "")
    elif key_ref is not None:
        kwargs["api_key"] = resolve_secret(key_ref)


# Loggers that log at DEBUG on every call.  Inside a Flink worker the root
# logger lets DEBUG through to PyFlink's handler, and the openai SDK then
# formats and ships every request's options: about a tenth of a call's CPU
# (py-spy on the agent operator).  Raised to WARNING unless set explicitly.
_PER_CALL_LOGGERS = ("openai", "httpx", "httpcore", "aiohttp")


def import_litellm() -> Any:
    """Import litellm without network access at import time and with quiet logs."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    logging.getLogger("LiteLLM").setLevel(logging.WARNING)
    for name in _PER_CALL_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    return litellm


def _is_litellm_request_build(fn: Callable[..., Any]) -> bool:
    """``partial(ctx.run, partial(litellm.<sync entry>, ...))``: what ``acompletion`` hands over."""
    if not isinstance(fn, functools.partial) or not fn.args:
        return False
    runner, inner = fn.func, fn.args[0]
    return (
        isinstance(getattr(runner, "__self__", None), contextvars.Context)
        and isinstance(inner, functools.partial)
        and str(getattr(inner.func, "__module__", "")).startswith("litellm.")
    )


class _InlineRequestBuilding(concurrent.futures.ThreadPoolExecutor):
    """The default executor of a call loop: litellm's request building runs inline.

    ``litellm.acompletion`` runs its synchronous ``completion`` in the loop's
    default executor; for an async provider that only builds the request and
    returns a coroutine, pure CPU work.  The hop to a pool thread and back
    cost about a tenth of a call's CPU here (two GIL hand-overs and a wake-up
    of the loop), so that one callable runs on the loop's thread instead.
    Anything else (DNS look-ups, other libraries' blocking work) still goes
    to the thread pool, and so does litellm's request building if a later
    litellm hands it over in another shape.
    """

    inlined = 0
    """Callables run on the loop's thread (read by tests and diagnostics)."""
    pooled = 0
    """Callables handed to the pool's threads."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not _is_litellm_request_build(fn):
            self.pooled += 1
            return super().submit(fn, *args, **kwargs)
        self.inlined += 1
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting call, as a pool would
            future.set_exception(exc)
        return future


def new_call_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for litellm calls (see :class:`_InlineRequestBuilding`)."""
    loop = asyncio.new_event_loop()
    loop.set_default_executor(_InlineRequestBuilding(thread_name_prefix="litellm-blocking"))
    return loop


def missing_model_environment(model: str) -> list[str]:
    """The environment variables litellm wants for ``model`` and does not find.

    Raises :class:`ConfigError` when litellm cannot tell the model's provider.
    """
    litellm = import_litellm()
    try:
        litellm.get_llm_provider(model)
    except Exception as exc:  # litellm raises BadRequestError for an unknown provider
        raise ConfigError(
            f"litellm cannot tell the provider of model {model!r}; use provider/model, "
            "e.g. openai/gpt-4o-mini"
        ) from exc
    return list(litellm.validate_environment(model=model).get("missing_keys") or [])


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


@dataclass(frozen=True)
class Attempt:
    """One litellm call's outcome, classified where the call ran (here or in a worker).

    ``rate_limited`` (429) and ``transient`` (timeouts, 5xx, connection errors,
    malformed bodies) are retried by :class:`LiteLLMClient`; ``failed`` (a bad
    request, bad credentials, an unknown model) is not.
    """

    kind: Literal["ok", "rate_limited", "transient", "failed"]
    result: LLMResult | None = None
    retry_after_s: float | None = None
    error: str = ""


Transport = Callable[[dict[str, Any]], Awaitable[Attempt]]


async def attempt_call(kwargs: dict[str, Any]) -> Attempt:
    """Make one ``litellm.acompletion`` call with ``kwargs``; never raises for its failure."""
    litellm = import_litellm()
    transient = (
        litellm.Timeout,
        litellm.APIConnectionError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.APIError,
    )
    try:
        response = await litellm.acompletion(**kwargs)
    except litellm.RateLimitError as exc:
        return Attempt("rate_limited", retry_after_s=_retry_after_s(exc), error=_describe(exc))
    except transient as exc:
        return Attempt("transient", error=_describe(exc))
    except litellm.BadRequestError as exc:
        return Attempt("failed", error=_describe(exc))
    except Exception as exc:  # noqa: BLE001 - auth, not found, ...: a failed call, not a bug
        return Attempt("failed", error=_describe(exc))
    return Attempt("ok", result=_result(response, str(kwargs["model"])))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _result(response: Any, model: str) -> LLMResult:
    message = response.choices[0].message
    usage = getattr(response, "usage", None)
    tool_calls = tuple(
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in (message.tool_calls or ())
    )
    # litellm prices every response it knows the model of; unknown models cost 0.
    hidden = getattr(response, "_hidden_params", None) or {}
    return LLMResult(
        content=message.content or "",
        tool_calls=tool_calls,
        model=model,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=float(hidden.get("response_cost") or 0.0),
    )


class LiteLLMClient:
    """Async chat completions through ``litellm.acompletion``.

    ``transport`` makes one call: :func:`attempt_call` in this process by
    default, or :class:`~streaming_agents.llm.call_pool.CallPool` to run
    litellm's CPU-heavy work in worker processes.  Limits, retries and
    fallbacks stay here either way.
    """

    def __init__(
        self,
        spec: ModelSpec,
        limiter: AdaptiveLimiter,
        *,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        rate_limit_patience_s: float = 600.0,
        transport: Transport | None = None,
        remote_key: bool = False,
    ):
        self.spec = spec
        self.limiter = limiter
        self.rate_limit_patience_s = rate_limit_patience_s
        self.stats = CallStats()
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._transport: Transport = transport or attempt_call
        # A worker resolves the API key from its own environment: the key
        # never crosses the pipe.
        self._remote_key = remote_key

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
        self._add_key(kwargs)
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

    def _add_key(self, kwargs: dict[str, Any]) -> None:
        """This agent's key, read now from its own reference (never kept here)."""
        if self.spec.api_key_env:
            if os.environ.get(self.spec.api_key_env) is None:
                raise ConfigError(
                    f"environment variable {self.spec.api_key_env} (the API key) is not set"
                )
            if self._remote_key:
                kwargs[API_KEY_ENV_ARG] = self.spec.api_key_env
            else:
                kwargs["api_key"] = os.environ[self.spec.api_key_env]
        elif self.spec.api_key_ref:
            if not self._remote_key:
                kwargs["api_key"] = resolve_secret(self.spec.api_key_ref)
            elif secret_visible(self.spec.api_key_ref):
                kwargs[API_KEY_REF_ARG] = self.spec.api_key_ref
            else:
                raise ConfigError(f"the API key {self.spec.api_key_ref} cannot be read")

    async def complete(self, request: LLMRequest) -> LLMResult:
        """One logical call: retries with backoff, then the fallbacks, in order.

        Rate limits (429) are not counted against ``num_retries``: they shrink
        the limiter and wait ``Retry-After``, for up to ``rate_limit_patience_s``
        in all, so a 429 storm slows the job down instead of failing events.
        """
        last = "no attempt"
        for model in (self.spec.model, *self.spec.fallbacks):
            attempt, throttled_s = 0, 0.0
            while attempt <= self.spec.num_retries:
                kwargs = self._kwargs(request, model)
                started = time.perf_counter()
                async with self.limiter.slot():
                    outcome = await self._transport(kwargs)
                last = outcome.error or last
                if outcome.kind == "rate_limited":
                    self.stats.rate_limited += 1
                    self.limiter.rate_limited()
                    delay = outcome.retry_after_s or self._backoff(attempt + 1)
                    throttled_s += delay
                    if throttled_s > self.rate_limit_patience_s:
                        break
                    await asyncio.sleep(delay * random.uniform(1.0, 1.2))
                    continue
                if outcome.kind == "transient":
                    attempt += 1
                    if attempt <= self.spec.num_retries:
                        self.stats.retries += 1
                        await asyncio.sleep(self._backoff(attempt) * random.uniform(0.5, 1.0))
                    continue
                if outcome.kind == "failed" or outcome.result is None:
                    break
                self.limiter.succeeded()
                self.stats.calls += 1
                return self._account(outcome.result, (time.perf_counter() - started) * 1000)
        self.stats.failures += 1
        raise LLMCallError(f"LLM call failed after retries and fallbacks: {last}")

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1)))

    def _account(self, result: LLMResult, latency_ms: float) -> LLMResult:
        self.stats.prompt_tokens += result.prompt_tokens
        self.stats.completion_tokens += result.completion_tokens
        self.stats.cost_usd += result.cost_usd
        return result.model_copy(update={"latency_ms": latency_ms})
