"""What the agent operator accepts as an event, and the dead-letter record format.

Accepted: a JSON object as ``str``/``bytes``, a ``dict``, a PyFlink ``Row``
(converted with ``as_dict``), or a ``kafka_records`` row carrying the raw
bytes plus topic/partition/offset/timestamp.  Anything else -- not UTF-8, not
JSON, not an object, larger than ``max_bytes`` -- becomes a dead letter with
the original bytes (base64) and, when known, the source coordinates, so it
can be inspected and replayed.  Nothing is dropped.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Envelope", "Rejected", "dead_letter", "parse_event"]

Envelope = dict[str, Any]
"""``{"e": event, "s": source coordinates or None}``: what the queue in state holds."""


@dataclass(frozen=True)
class Rejected:
    """An input the agent cannot use, and why."""

    reason: str
    error: str
    raw: bytes | None
    payload: Any
    source: dict[str, Any] | None


def _source_of(value: Any) -> tuple[bytes, dict[str, Any]] | None:
    names = getattr(value, "_fields", None) or ()
    if "value" not in names or "offset" not in names:
        return None
    row = value.as_dict()
    ts = row.get("ts")
    millis = ts.to_epoch_milli() if hasattr(ts, "to_epoch_milli") else None
    source = {
        "topic": row.get("topic"),
        "partition": row.get("partition"),
        "offset": row.get("offset"),
        "timestamp_ms": millis,
    }
    return bytes(row["value"] or b""), source


def parse_event(value: Any, max_bytes: int) -> Envelope | Rejected:
    """Turn one stream element into an envelope for the queue, or a rejection."""
    source: dict[str, Any] | None = None
    found = _source_of(value)
    if found is not None:
        value, source = found
    if isinstance(value, dict):
        return {"e": value, "s": source}
    if not isinstance(value, (str, bytes, bytearray)):
        as_dict = getattr(value, "as_dict", None)
        if callable(as_dict):
            return {"e": as_dict(), "s": source}
        return Rejected(
            "malformed event",
            f"unsupported type {type(value).__name__}",
            None,
            repr(value)[:1000],
            source,
        )
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) > max_bytes:
        return Rejected(
            "oversized event",
            f"{len(raw)} bytes > {max_bytes}",
            raw,
            raw[:200].decode("utf-8", "backslashreplace"),
            source,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(
            "malformed event",
            f"not UTF-8: {exc}",
            raw,
            raw.decode("utf-8", "backslashreplace"),
            source,
        )
    try:
        event = json.loads(text)
    except ValueError as exc:
        return Rejected("malformed event", f"not JSON: {exc}", raw, text, source)
    if not isinstance(event, dict):
        return Rejected("malformed event", "not a JSON object", raw, text, source)
    return {"e": event, "s": source}


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
) -> str:
    """The JSON record written to the dead-letter output."""
    return json.dumps(
        {
            "reason": reason,
            "error": error,
            "agent": agent,
            "version": version,
            "key": key,
            "payload": payload,
            "original_b64": base64.b64encode(raw).decode() if raw is not None else None,
            "source": source,
            "ts": time.time(),
        },
        default=str,
    )
