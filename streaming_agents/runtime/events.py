"""What the agent operator accepts as an event, and the dead-letter record format.

Accepted: a JSON object as ``str``/``bytes``, a ``dict``, a PyFlink ``Row``
(converted with ``as_dict``), a ``kafka_records`` row carrying the raw bytes
plus topic/partition/offset/timestamp, or a row prepared by the pipeline
builder (:mod:`streaming_agents.pipeline`, already decoded once).  Anything
else -- a null value (tombstone), empty, not UTF-8, a byte order mark, not
JSON, not an object, nested deeper or larger than the :class:`Limits` allow,
non-finite or overflowing numbers, duplicate keys -- becomes a dead letter
with its reason and the source coordinates.  Nothing is dropped and nothing
raises: see :mod:`streaming_agents.runtime.safe_json` for the exact rules.

Dead letters always fit their sink: a record is at most
``Limits.max_record_bytes`` (default 1,000,000 bytes, under Kafka's default
``max.request.size`` of 1,048,576 and the broker's ``message.max.bytes``).
The original bytes ride along (base64) when they fit; otherwise the dead
letter keeps a preview, the original's size and SHA-256, and its exact
topic/partition/offset, so the original can still be read from the input
topic for as long as that topic retains it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from streaming_agents.errors import ConfigError
from streaming_agents.runtime.safe_json import DEFAULT_MAX_DEPTH, BadJson, decode_object

__all__ = [
    "MALFORMED_KEY",
    "PREPARED_FIELDS",
    "Envelope",
    "Limits",
    "Rejected",
    "dead_letter",
    "decode",
    "is_prepared",
    "original_of",
    "parse_event",
    "record_of",
]

Envelope = dict[str, Any]
"""``{"e": event, "s": source coordinates or None}``: what the queue in state holds."""

MALFORMED_KEY = "__malformed__"
"""The key of records whose key cannot be derived (they are dead-lettered under it)."""

PREPARED_FIELDS = ("sa_key", "sa_envelope", "sa_ts")
"""Field names of the rows the pipeline builder hands to the agent operator."""

_PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class Limits:
    """Bounds on what the agent operator reads and writes; all have safe defaults.

    ``max_event_bytes``: larger input values are dead-lettered ("oversized
    event").  ``max_depth``: deeper JSON nesting is dead-lettered before it is
    parsed.  ``max_key_chars``: longer key values are not used as keys (the
    record goes to :data:`MALFORMED_KEY`).  ``max_record_bytes``: no output or
    dead-letter record is larger (an output that would be is dead-lettered as
    "output too large"); keep it at or below the sink's ``max.request.size``
    and the topic's ``max.message.bytes``.
    """

    max_event_bytes: int = 512 * 1024
    max_depth: int = DEFAULT_MAX_DEPTH
    max_key_chars: int = 256
    max_record_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_event_bytes", "max_depth", "max_key_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Limits.{name} must be at least 1")
        if self.max_record_bytes < 8192:
            raise ConfigError("Limits.max_record_bytes must be at least 8192")


@dataclass(frozen=True)
class Rejected:
    """An input the agent cannot use, and why."""

    reason: str
    error: str
    raw: bytes | None
    payload: Any
    source: dict[str, Any] | None
    original: dict[str, Any] | None = None
    """Size and SHA-256 of the record's bytes when ``raw`` was not kept."""


def is_prepared(value: Any) -> bool:
    """Whether ``value`` is a row made by the pipeline builder (decoded once already)."""
    return tuple(getattr(value, "_fields", None) or ()) == PREPARED_FIELDS


def _epoch_millis(ts: Any) -> int | None:
    """A record timestamp in epoch ms: a Java ``Instant`` (thread mode) or a datetime."""
    for method in ("toEpochMilli", "to_epoch_milli"):
        convert = getattr(ts, method, None)
        if callable(convert):
            return int(convert())
    stamp = getattr(ts, "timestamp", None)
    return int(stamp() * 1000) if callable(stamp) else None


def record_of(value: Any) -> tuple[bytes | None, dict[str, Any]] | None:
    """``(value bytes or None, source coordinates)`` of a ``kafka_records`` row, else None."""
    names = getattr(value, "_fields", None) or ()
    if "value" not in names or "offset" not in names:
        return None
    row = value.as_dict()
    millis = _epoch_millis(row.get("ts"))
    source = {
        "topic": row.get("topic"),
        "partition": row.get("partition"),
        "offset": row.get("offset"),
        "timestamp_ms": millis,
    }
    raw = row["value"]
    return (None if raw is None else bytes(raw)), source


def decode(raw: bytes | None, source: dict[str, Any] | None, limits: Limits) -> Envelope | Rejected:
    """One record value (bytes, or None for a tombstone) as an envelope, or why not."""
    if raw is None:
        return Rejected("malformed event", "null value (a tombstone)", None, None, source)
    if len(raw) > limits.max_event_bytes:
        error = f"{len(raw)} bytes > {limits.max_event_bytes}"
        preview = raw[:200].decode("utf-8", "backslashreplace")
        return Rejected("oversized event", error, raw, preview, source)
    event = decode_object(raw, limits.max_depth)
    if isinstance(event, BadJson):
        text = raw[:_PREVIEW_CHARS].decode("utf-8", "backslashreplace")
        return Rejected("malformed event", event.error, raw, text, source)
    return {"e": event, "s": source}


def _prepared(value: Any) -> Envelope | Rejected:
    envelope = json.loads(value[1])
    bad = envelope.get("x")
    if bad is None:
        return {"e": envelope["e"], "s": envelope.get("s")}
    raw = base64.b64decode(bad["b64"]) if bad.get("b64") is not None else None
    source = envelope.get("s")
    return Rejected(
        bad["reason"], bad["error"], raw, bad.get("payload"), source, bad.get("original")
    )


def parse_event(value: Any, limits: Limits) -> Envelope | Rejected:
    """Turn one stream element into an envelope for the queue, or a rejection."""
    if is_prepared(value):
        return _prepared(value)
    found = record_of(value)
    if found is not None:
        return decode(found[0], found[1], limits)
    if isinstance(value, dict):
        return {"e": value, "s": None}
    if value is None:
        return decode(None, None, limits)
    if isinstance(value, (str, bytes, bytearray)):
        raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
        return decode(raw, None, limits)
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return {"e": as_dict(), "s": None}
    error = f"unsupported type {type(value).__name__}"
    return Rejected("malformed event", error, None, repr(value)[:1000], None)


def original_of(raw: bytes | None) -> dict[str, Any] | None:
    """``{"bytes": size, "sha256": hex}`` of a record's bytes (None for a tombstone)."""
    if raw is None:
        return None
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def _shrink(record: dict[str, Any], step: int) -> bool:
    """Drop or cut the next largest part of a dead letter; False when nothing is left."""
    if step == 0:
        record["original_b64"] = None
    elif step == 1:
        payload = record["payload"]
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        record["payload"] = text[:_PREVIEW_CHARS]
    elif step == 2:
        record["payload"] = None
        record["error"] = record["error"][:500]
        record["key"] = record["key"][:200]
    else:
        return False
    record["truncated"] = True
    return True


def dead_letter(
    reason: str,
    key: str,
    payload: Any,
    error: str = "",
    *,
    raw: bytes | None = None,
    source: dict[str, Any] | None = None,
    agent: str = "",
    version: str = "",
    original: dict[str, Any] | None = None,
    max_bytes: int = Limits.max_record_bytes,
) -> str:
    """The JSON record written to the dead-letter output (ASCII, at most ``max_bytes``).

    Fields: ``reason`` (a short category), ``error`` (details), ``agent``,
    ``version``, ``key``, ``payload`` (the event or a preview), ``original_b64``
    (the record's bytes, when they fit), ``original`` (their size and SHA-256),
    ``source`` (topic/partition/offset/timestamp_ms), ``truncated``, ``ts``.
    """
    record: dict[str, Any] = {
        "reason": reason,
        "error": error[:_PREVIEW_CHARS],
        "agent": agent,
        "version": version,
        "key": key[:_PREVIEW_CHARS],
        "payload": payload,
        "original_b64": base64.b64encode(raw).decode() if raw is not None else None,
        "original": original_of(raw) or original,
        "source": source,
        "truncated": False,
        "ts": time.time(),
    }
    if raw is not None and 4 * len(raw) // 3 > max_bytes:
        record["original_b64"] = None
        record["truncated"] = True
    text = json.dumps(record, default=str)
    step = 0
    while len(text) > max_bytes and _shrink(record, step):
        step += 1
        text = json.dumps(record, default=str)
    return text
