"""Configuration and deterministic reply logic of the fake LLM server.

Nothing here does I/O: :class:`Script` turns a parsed request body into a
reply (or a fault), so the same request always gets the same reply.  The HTTP
layer lives in :mod:`streaming_agents.testing.fake_llm`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ExponentialLatency",
    "FakeLLMConfig",
    "Outcome",
    "Rule",
    "Script",
    "ToolCallSpec",
    "UniformLatency",
    "canonical_digest",
    "example_for_schema",
    "is_fake_judge",
    "judge_reply",
]

_MAX_DEPTH = 8


class UniformLatency(BaseModel):
    """Latency drawn uniformly from ``[min_ms, max_ms]``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["uniform"]
    min_ms: float = Field(ge=0)
    max_ms: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> UniformLatency:
        if self.max_ms < self.min_ms:
            raise ValueError("max_ms must be >= min_ms")
        return self


class ExponentialLatency(BaseModel):
    """Latency drawn from an exponential distribution with mean ``mean_ms``."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["exponential"]
    mean_ms: float = Field(gt=0)


class ToolCallSpec(BaseModel):
    """One tool call a rule makes the model emit."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Rule(BaseModel):
    """A scripted reply, chosen when ``match`` is found in the last user message.

    Exactly one action must be given: ``reply`` (text), ``json`` (an object sent
    as JSON text), ``tool_calls``, ``status`` (an HTTP error such as 429 or 500)
    or ``fault`` (``timeout`` / ``malformed``).  ``after_tool``: ``None`` = the
    rule applies whatever the last message is (tool_calls rules: only when the
    last message is not a ``tool`` message); ``True`` = only right after a tool
    result; ``False`` = never right after a tool result.  ``model``: ``None`` = the
    rule applies to every model but the deterministic judge (``fake-judge``);
    a name = only to requests for that model (any provider prefix), so a test can
    script the judge's failures without touching the agents' replies.
    ``system``: ``None`` = any system prompt; a regex = only when it is found in
    the request's system message(s), so two versions of an agent that differ
    only in their system prompt can get different replies.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    match: str
    reply: str | None = None
    json_: Any = Field(default=None, alias="json")
    tool_calls: list[ToolCallSpec] | None = None
    status: int | None = Field(default=None, ge=400, le=599)
    fault: Literal["timeout", "malformed"] | None = None
    after_tool: bool | None = None
    model: str | None = None
    system: str | None = None

    @field_validator("match", "system")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        actions = [
            self.reply is not None,
            "json" in self.model_fields_set or "json_" in self.model_fields_set,
            self.tool_calls is not None,
            self.status is not None,
            self.fault is not None,
        ]
        if sum(actions) != 1:
            raise ValueError("a rule needs exactly one of reply, json, tool_calls, status, fault")
        if self.tool_calls is not None and self.after_tool:
            raise ValueError("a tool_calls rule cannot have after_tool=true (endless tool loop)")
        return self


class FakeLLMConfig(BaseModel):
    """Runtime behaviour of the fake LLM (``--config`` / ``POST /_admin/config``).

    Keys: ``latency_ms`` (number, or ``{"kind": "uniform", "min_ms", "max_ms"}``
    or ``{"kind": "exponential", "mean_ms"}``), ``seed`` (RNG for latency and
    faults), ``rate_429``/``rate_500``/``rate_timeout``/``rate_malformed``
    (per-request probabilities, sum <= 1), ``retry_after_s`` (``Retry-After`` of
    429 replies), ``timeout_s`` (how long a timeout fault hangs), ``rules``.
    """

    model_config = ConfigDict(extra="forbid")
    latency_ms: float | UniformLatency | ExponentialLatency = Field(default=0.0)
    seed: int = 0
    rate_429: float = Field(default=0.0, ge=0, le=1)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_timeout: float = Field(default=0.0, ge=0, le=1)
    rate_malformed: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: int = Field(default=1, ge=0)
    timeout_s: float = Field(default=30.0, ge=0)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("latency_ms")
    @classmethod
    def _non_negative(
        cls, value: float | UniformLatency | ExponentialLatency
    ) -> float | UniformLatency | ExponentialLatency:
        if isinstance(value, float | int) and value < 0:
            raise ValueError("latency_ms must be >= 0")
        return value

    @model_validator(mode="after")
    def _rates_sum(self) -> FakeLLMConfig:
        if self.rate_429 + self.rate_500 + self.rate_timeout + self.rate_malformed > 1.0 + 1e-9:
            raise ValueError("rate_429 + rate_500 + rate_timeout + rate_malformed must be <= 1")
        return self


@dataclass
class Outcome:
    """What the server must do with one request.

    ``kind`` is ``ok`` (send ``body`` as JSON), ``error`` (send ``body`` with
    ``status``), ``timeout`` (hang ``delay_s``) or ``malformed`` (non-JSON 200).
    """

    kind: Literal["ok", "error", "timeout", "malformed"]
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def canonical_digest(parts: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``parts``."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _text(content: Any) -> str:
    """The text of a message content (a string, or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _words(text: str) -> int:
    return len(text.split())


def example_for_schema(schema: Any, seed_text: str, root: Any = None, depth: int = 0) -> Any:
    """A deterministic instance of a JSON schema (``$ref``/``$defs`` resolved).

    Strings come from ``seed_text``, numbers are 0 or 1 (inside any bounds),
    booleans ``True``, arrays hold one item, enums take their first value.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            if part:
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        return example_for_schema(target, seed_text, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [
                o for o in schema[key] if not (isinstance(o, dict) and o.get("type") == "null")
            ]
            if not options or depth >= _MAX_DEPTH:
                return None
            return example_for_schema(options[0], seed_text, root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            value = example_for_schema(sub, seed_text, root, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
            elif not merged:
                return value
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        kind = non_null[0] if non_null else "null"
    if kind is None:
        kind = "object" if "properties" in schema else ("array" if "items" in schema else "string")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", []))
        keep = props if depth < _MAX_DEPTH else {k: v for k, v in props.items() if k in required}
        return {k: example_for_schema(v, seed_text, root, depth + 1) for k, v in keep.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 0)))
        if schema.get("maxItems") == 0 or (depth >= _MAX_DEPTH and not schema.get("minItems")):
            count = 0
        items = schema.get("items", {"type": "string"})
        return [example_for_schema(items, seed_text, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, seed_text)


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    """0 or 1 when allowed, else the closest value inside the schema's bounds."""
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")

    def allowed(v: float) -> bool:
        return (
            (low is None or v >= low)
            and (high is None or v <= high)
            and (xlow is None or v > xlow)
            and (xhigh is None or v < xhigh)
        )

    candidates: list[float] = [0, 1]
    candidates += [b for b in (low, high) if b is not None]
    candidates += [b + d for b in (xlow,) if b is not None for d in (1, 0.5)]
    candidates += [b - d for b in (xhigh,) if b is not None for d in (1, 0.5)]
    if xlow is not None and xhigh is not None:
        candidates.append((xlow + xhigh) / 2)
    for value in candidates:
        if integer and value != int(value):
            continue
        if allowed(value):
            return int(value) if integer else float(value)
    return int(candidates[0]) if integer else float(candidates[0])


_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "fake@example.com",
    "uri": "https://example.com/fake",
    "url": "https://example.com/fake",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}


def _string(schema: dict[str, Any], seed_text: str) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    text = seed_text or "fake"
    min_len = int(schema.get("minLength", 0))
    if len(text) < min_len:
        text = (text + " ") * (min_len // (len(text) + 1) + 1)
    if "maxLength" in schema:
        text = text[: int(schema["maxLength"])]
    return text


def embedding(text: str) -> list[float]:
    """A deterministic 8-dim unit vector derived from SHA-256 of ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [v / 2**31 - 1.0 for v in struct.unpack("<8I", digest)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in raw]


FAKE_JUDGE = "fake-judge"
_PREFER = re.compile(r"^\s*prefer:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def is_fake_judge(model: Any) -> bool:
    """Whether a request is for the deterministic judge (model ``fake-judge``, any provider)."""
    return isinstance(model, str) and model.rsplit("/", 1)[-1] == FAKE_JUDGE


def judge_reply(messages: list[Any]) -> str:
    """The deterministic judge's verdict (JSON) on the pair in the last user message.

    The pair is ``{"A": ..., "B": ...}`` (as :mod:`streaming_agents.replay.judge`
    sends it).  A rubric line ``prefer: REGEX`` (in the system message) decides:
    the answer whose JSON text matches it wins; both or neither is a tie.
    Without such a line the longer answer (more detail) wins; same length: tie.
    """
    system = " ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    user = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    try:
        pair = json.loads(user)
        a, b = (json.dumps(pair[side], sort_keys=True) for side in ("A", "B"))
    except (ValueError, TypeError, KeyError):
        return json.dumps({"preference": "tie", "reason": "fake judge: no A/B pair in the request"})
    found = _PREFER.search(system)
    if found is not None:
        try:
            pattern = re.compile(found.group(1), re.IGNORECASE)
        except re.error:
            pattern = re.compile(re.escape(found.group(1)), re.IGNORECASE)
        hit_a, hit_b = bool(pattern.search(a)), bool(pattern.search(b))
        preference = "A" if hit_a and not hit_b else ("B" if hit_b and not hit_a else "tie")
        who = {"A": "only A", "B": "only B", "tie": "both" if hit_a else "neither"}[preference]
        reason = f"{who} matches the rubric's preference /{pattern.pattern}/"
    else:
        preference = "A" if len(a) > len(b) else ("B" if len(b) > len(a) else "tie")
        reason = f"fake judge prefers the longer answer ({len(a)} vs {len(b)} characters)"
    return json.dumps({"preference": preference, "reason": reason})


class Script:
    """Turns requests into outcomes under one :class:`FakeLLMConfig`."""

    def __init__(self, config: FakeLLMConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._rules = [(re.compile(r.match), r) for r in config.rules]
        self._systems = [None if r.system is None else re.compile(r.system) for r in config.rules]

    def latency_s(self) -> float:
        """Sample the configured latency, in seconds."""
        lat = self.config.latency_ms
        if isinstance(lat, UniformLatency):
            return self.rng.uniform(lat.min_ms, lat.max_ms) / 1000.0
        if isinstance(lat, ExponentialLatency):
            return self.rng.expovariate(1.0 / lat.mean_ms) / 1000.0
        return float(lat) / 1000.0

    def _random_fault(self) -> Outcome | None:
        cfg = self.config
        if not (cfg.rate_429 or cfg.rate_500 or cfg.rate_timeout or cfg.rate_malformed):
            return None
        draw = self.rng.random()
        for rate, status in (
            (cfg.rate_429, 429),
            (cfg.rate_500, 500),
            (cfg.rate_timeout, -1),
            (cfg.rate_malformed, -2),
        ):
            if draw < rate:
                return self._fault(status)
            draw -= rate
        return None

    def _fault(self, status: int) -> Outcome:
        if status == -1:
            return Outcome("timeout", status=504, delay_s=self.config.timeout_s)
        if status == -2:
            return Outcome("malformed")
        kind = {429: "rate_limit_error", 400: "invalid_request_error"}.get(status, "server_error")
        body = {
            "error": {
                "message": f"fake LLM injected HTTP {status}",
                "type": kind,
                "param": None,
                "code": str(status),
            }
        }
        headers = {"Retry-After": str(self.config.retry_after_s)} if status == 429 else {}
        return Outcome("error", status=status, body=body, headers=headers)

    def chat(self, body: dict[str, Any], digest: str) -> Outcome:
        """The outcome of a chat completion request."""
        fault = self._random_fault()
        if fault is not None:
            return fault
        messages: list[Any] = body.get("messages") or []
        last_user = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        after_tool = bool(messages) and messages[-1].get("role") == "tool"
        system = " ".join(
            _text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") == "system"
        )
        rule = self._match(last_user, after_tool, body.get("model"), system)
        content: str | None = None
        tool_calls: list[dict[str, Any]] | None = None
        if rule is not None and rule.status is not None:
            return self._fault(rule.status)
        if rule is not None and rule.fault is not None:
            return self._fault(-1 if rule.fault == "timeout" else -2)
        if rule is not None and rule.tool_calls is not None:
            tool_calls = [
                {
                    "id": f"call_{digest[i * 4 : i * 4 + 24]}",
                    "type": "function",
                    "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)},
                }
                for i, tc in enumerate(rule.tool_calls)
            ]
        elif rule is not None and rule.reply is not None:
            content = rule.reply
        elif rule is not None:
            content = json.dumps(rule.json_)
        elif is_fake_judge(body.get("model")):
            content = judge_reply(messages)
        else:
            content = self._default_reply(body, len(messages), last_user)
        if tool_calls is not None:
            reply_words = sum(
                _words(t["function"]["name"] + " " + t["function"]["arguments"]) for t in tool_calls
            )
        else:
            reply_words = _words(content or "")
        prompt = sum(_words(_text(m.get("content"))) for m in messages) + len(messages)
        completion = max(1, reply_words)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls is not None:
            message["tool_calls"] = tool_calls
        return Outcome(
            "ok",
            body={
                "id": f"chatcmpl-{digest[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "system_fingerprint": "fake_llm",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if tool_calls else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )

    def _match(self, last_user: str, after_tool: bool, model: Any, system: str = "") -> Rule | None:
        name = model.rsplit("/", 1)[-1] if isinstance(model, str) else ""
        for (pattern, rule), wanted in zip(self._rules, self._systems, strict=True):
            if wanted is not None and not wanted.search(system):
                continue  # a rule for another system prompt
            if (rule.model or "").rsplit("/", 1)[-1] != name and (
                rule.model is not None or name == FAKE_JUDGE
            ):
                continue  # a rule for another model; the judge only takes rules naming it
            if rule.tool_calls is not None and after_tool:
                continue
            if rule.after_tool is not None and rule.after_tool != after_tool:
                continue
            if pattern.search(last_user):
                return rule
        return None

    @staticmethod
    def _default_reply(body: dict[str, Any], n: int, last_user: str) -> str:
        echo = f"echo[n={n}]: {last_user}"
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema", spec) if isinstance(spec, dict) else {}
            return json.dumps(example_for_schema(schema, last_user))
        if isinstance(fmt, dict) and fmt.get("type") == "json_object":
            return json.dumps({"reply": echo})
        return echo

    def embeddings(self, body: dict[str, Any]) -> Outcome:
        """The outcome of an embeddings request."""
        fault = self._random_fault()
        if fault is not None:
            return fault
        raw = body.get("input", "")
        inputs = (
            raw if isinstance(raw, list) and not all(isinstance(i, int) for i in raw) else [raw]
        )
        texts = [i if isinstance(i, str) else json.dumps(i) for i in inputs]
        as_b64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vec = embedding(text)
            value: Any = base64.b64encode(struct.pack("<8f", *vec)).decode() if as_b64 else vec
            data.append({"object": "embedding", "index": index, "embedding": value})
        tokens = max(1, sum(_words(t) for t in texts))
        return Outcome(
            "ok",
            body={
                "object": "list",
                "data": data,
                "model": body.get("model", "fake"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
