"""Tests of the fake OpenAI-compatible LLM server, driven through litellm."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from enum import StrEnum
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, Field

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

from streaming_agents.errors import ConfigError, InfrastructureError
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.fake_llm_script import example_for_schema

T = TypeVar("T")
MODEL = "openai/fake-model"
NO_RETRY: dict[str, Any] = {"num_retries": 0, "max_retries": 0}
# litellm's error classes do not share a litellm base class (they derive from openai's)
LITELLM_ERRORS = (litellm.APIError, litellm.InternalServerError, litellm.APIConnectionError)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the module: litellm caches clients bound to a loop."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    return loop.run_until_complete(coro)


async def chat(fake: FakeLLM, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return await litellm.acompletion(
        model=MODEL, api_base=fake.base_url, api_key="sk-fake", messages=messages, **kwargs
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def test_echo_reports_message_count_and_usage(
    fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop
) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        user("first question"),
        {"role": "assistant", "content": "first answer"},
        user("hello there world"),
    ]
    resp = run(loop, chat(fake_llm, messages))
    assert resp.choices[0].message.content == "echo[n=4]: hello there world"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model.endswith("fake-model")
    # 2 + 2 + 2 + 3 words, plus 4 messages; reply "echo[n=4]: hello there world" = 4 words
    assert resp.usage.prompt_tokens == 13
    assert resp.usage.completion_tokens == 4
    assert resp.usage.total_tokens == 17
    again = run(loop, chat(fake_llm, messages))
    assert again.id == resp.id
    assert again.choices[0].message.content == resp.choices[0].message.content


def test_rules_first_match_wins(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    fake_llm.configure(
        {
            "rules": [
                {"match": r"weather in \w+", "reply": "sunny"},
                {"match": "weather", "reply": "never chosen for 'weather in X'"},
                {"match": "^score", "json": {"score": 3, "ok": True}},
            ]
        }
    )
    resp = run(loop, chat(fake_llm, [user("what is the weather in Paris?")]))
    assert resp.choices[0].message.content == "sunny"
    resp = run(loop, chat(fake_llm, [user("weather?")]))
    assert resp.choices[0].message.content == "never chosen for 'weather in X'"
    resp = run(loop, chat(fake_llm, [user("score this")]))
    assert json.loads(resp.choices[0].message.content) == {"score": 3, "ok": True}
    resp = run(loop, chat(fake_llm, [user("nothing matches")]))
    assert resp.choices[0].message.content == "echo[n=1]: nothing matches"


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    number: int = Field(ge=5)


class Person(BaseModel):
    name: str
    age: int
    height: float
    alive: bool
    colour: Colour
    tags: list[str]
    address: Address
    previous: list[Address]
    nickname: str | None = None


def test_json_schema_response_format_validates(
    fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop
) -> None:
    resp = run(loop, chat(fake_llm, [user("describe Ada")], response_format=Person))
    person = Person.model_validate_json(resp.choices[0].message.content)
    assert person.name == "describe Ada"
    assert person.colour is Colour.RED
    assert len(person.tags) == 1
    assert person.address.number >= 5


class Tree(BaseModel):
    label: str
    children: list[Tree]


def test_example_for_recursive_schema_terminates() -> None:
    value = example_for_schema(Tree.model_json_schema(), "x")
    Tree.model_validate(value)


def test_tool_calls_rule_and_loop_end(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    # No `tools=` here: litellm 1.106 imports its MCP gateway (needs the `mcp` extra)
    # whenever tools are passed.  The fake's tool_calls rules do not look at `tools`.
    fake_llm.configure(
        {
            "rules": [
                {
                    "match": "weather",
                    "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                }
            ]
        }
    )
    messages = [user("weather in Oslo?")]
    resp = run(loop, chat(fake_llm, messages))
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "rainy"},
    ]
    resp = run(loop, chat(fake_llm, messages))
    assert resp.choices[0].message.content == "echo[n=3]: weather in Oslo?"
    assert not resp.choices[0].message.tool_calls

    fake_llm.configure(
        {
            "rules": [
                {"match": "weather", "tool_calls": [{"name": "get_weather", "arguments": {}}]},
                {"match": "weather", "after_tool": True, "reply": "It rains in Oslo."},
            ]
        }
    )
    resp = run(loop, chat(fake_llm, messages))
    assert resp.choices[0].message.content == "It rains in Oslo."


def test_rate_429_raises_rate_limit_error(
    fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop
) -> None:
    fake_llm.configure({"rate_429": 1.0, "retry_after_s": 7})
    with pytest.raises(litellm.RateLimitError):
        run(loop, chat(fake_llm, [user("hi")], **NO_RETRY))
    request = urllib.request.Request(
        fake_llm.base_url + "/chat/completions",
        data=json.dumps({"model": "m", "messages": [user("hi")]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 429
    assert info.value.headers["Retry-After"] == "7"
    assert json.loads(info.value.read())["error"]["type"] == "rate_limit_error"
    assert fake_llm.stats()["by_status"] == {"429": 2}


def test_rate_500_and_status_rule_raise(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    fake_llm.configure({"rate_500": 1.0})
    with pytest.raises(litellm.InternalServerError):
        run(loop, chat(fake_llm, [user("hi")], **NO_RETRY))
    fake_llm.configure({"rules": [{"match": "slow down", "status": 429}]})
    with pytest.raises(litellm.RateLimitError):
        run(loop, chat(fake_llm, [user("please slow down")], **NO_RETRY))
    resp = run(loop, chat(fake_llm, [user("fine")], **NO_RETRY))
    assert resp.choices[0].message.content == "echo[n=1]: fine"
    assert fake_llm.stats()["by_status"] == {"500": 1, "429": 1, "200": 1}


def test_malformed_body_raises(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    fake_llm.configure({"rate_malformed": 1.0})
    with pytest.raises(LITELLM_ERRORS):
        run(loop, chat(fake_llm, [user("hi")], **NO_RETRY))


def test_timeout_fault_raises_timeout(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    fake_llm.configure({"rate_timeout": 1.0, "timeout_s": 5})
    start = time.monotonic()
    with pytest.raises(litellm.Timeout):
        run(loop, chat(fake_llm, [user("hi")], timeout=1, **NO_RETRY))
    assert time.monotonic() - start < 4  # the fault hangs 5 s
    assert fake_llm.stats()["by_status"] == {"timeout": 1}
    fake_llm.wait_idle(timeout_s=6)  # the server drops the hung request once the client left


def test_counters_total_distinct_status_and_ring(
    fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop
) -> None:
    fake_llm.configure({"rules": [{"match": "boom", "status": 500}]})
    for text in ["a", "b", "a", "a", "boom"]:
        try:
            run(loop, chat(fake_llm, [user(text)], **NO_RETRY))
        except LITELLM_ERRORS:
            assert text == "boom"
    stats = fake_llm.stats()
    assert stats["requests_total"] == 5
    assert stats["requests_distinct"] == 3
    assert stats["chat_total"] == 5
    assert stats["embeddings_total"] == 0
    assert stats["by_status"] == {"200": 4, "500": 1}
    assert stats["in_flight"] == 0
    last = fake_llm.requests(last=2)
    assert [r["messages"][0]["content"] for r in last] == ["a", "boom"]
    assert last[0]["model"] == "fake-model"
    fake_llm.reset()
    stats = fake_llm.stats()
    assert stats["requests_total"] == stats["requests_distinct"] == 0
    assert stats["by_status"] == {}
    assert fake_llm.requests(last=10) == []


def test_max_concurrent_reaches_fifty(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    fake_llm.configure({"latency_ms": 300})

    async def burst() -> list[Any]:
        return await asyncio.gather(*(chat(fake_llm, [user(f"q{i}")]) for i in range(50)))

    start = time.monotonic()
    replies = run(loop, burst())
    elapsed = time.monotonic() - start
    assert sorted(r.choices[0].message.content for r in replies) == sorted(
        f"echo[n=1]: q{i}" for i in range(50)
    )
    stats = fake_llm.stats()
    assert stats["max_concurrent"] >= 45
    assert stats["requests_total"] == stats["requests_distinct"] == 50
    assert elapsed < 5  # 50 x 300 ms in sequence would take 15 s


@pytest.mark.parametrize(
    ("latency", "low", "high"),
    [
        (250, 0.25, 2.0),
        ({"kind": "uniform", "min_ms": 200, "max_ms": 300}, 0.2, 2.0),
    ],
)
def test_latency_is_measurable(
    fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop, latency: Any, low: float, high: float
) -> None:
    run(loop, chat(fake_llm, [user("warm up")]))
    fake_llm.configure({"latency_ms": latency, "seed": 3})
    start = time.monotonic()
    run(loop, chat(fake_llm, [user("hi")]))
    assert low <= time.monotonic() - start < high


def test_embeddings_are_deterministic(fake_llm: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
    async def embed(inputs: list[str]) -> Any:
        return await litellm.aembedding(
            model="openai/fake-embed", api_base=fake_llm.base_url, api_key="sk-fake", input=inputs
        )

    first = run(loop, embed(["alpha", "beta"]))
    second = run(loop, embed(["beta"]))
    vectors = [d["embedding"] for d in first.data]
    assert len(vectors) == 2 and all(len(v) == 8 for v in vectors)
    assert vectors[0] != vectors[1]
    assert second.data[0]["embedding"] == pytest.approx(vectors[1], abs=1e-6)
    assert fake_llm.stats()["embeddings_total"] == 2


@pytest.mark.parametrize(
    "config",
    [
        {"rate_429": 2},
        {"rate_429": 0.6, "rate_500": 0.6},
        {"rules": [{"match": "(unclosed", "reply": "x"}]},
        {"rules": [{"match": "x"}]},
        {"latency_ms": {"kind": "gaussian"}},
        {"no_such_key": 1},
    ],
)
def test_bad_config_is_rejected(fake_llm: FakeLLM, config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        fake_llm.configure(config)
    assert fake_llm.config()["rate_429"] == 0  # the previous config stays in force


def test_start_failure_raises_infrastructure_error() -> None:
    server = FakeLLM({"rate_429": 5})
    with pytest.raises(InfrastructureError, match="rate_429"):
        server.start()
    assert not server.running


def test_own_instance_with_startup_config() -> None:
    rules = [{"match": "ping", "reply": "pong"}]
    with FakeLLM({"rules": rules}, latency_ms=1) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.config()["latency_ms"] == 1
        assert server.config()["rules"][0]["reply"] == "pong"
    assert not server.running
