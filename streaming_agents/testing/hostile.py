"""A corpus of records a hostile (or just careless) Kafka producer can write.

Each :class:`Case` is one record -- value, optional record key and headers --
and what an agent job must do with it: ``"output"`` (processed; one output)
or the ``reason`` of the dead letter it must get.  :func:`corpus` builds the
cases around one valid event of the job under test, so the same corpus runs
through any job; :func:`interleaved` puts a valid event after every bad one
(each valid event proves the job was still consuming after the bad record).

The input topic must accept large records: :func:`create_corpus_topic`
raises its ``max.message.bytes`` to :data:`TOPIC_MAX_BYTES`.  Topics are
created and records written with the helpers of
:mod:`streaming_agents.testing.kafka` (one home for both).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streaming_agents.connectors.security import KafkaSecurity

__all__ = [
    "TOPIC_MAX_BYTES",
    "Case",
    "corpus",
    "create_corpus_topic",
    "interleaved",
    "produce_cases",
]

TOPIC_MAX_BYTES = 16 * 1024 * 1024
"""``max.message.bytes`` of the corpus topic (the largest case is 10 MB)."""

OUTPUT = "output"
MALFORMED = "malformed event"
OVERSIZED = "oversized event"
NO_KEY = "no key"


@dataclass(frozen=True)
class Case:
    """One record and the outcome it must have."""

    name: str
    value: bytes | None
    expect: str
    key: bytes | None = None
    headers: list[tuple[str, str | bytes | None]] = field(default_factory=list)


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _with(base: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({**base, **extra}, ensure_ascii=False).encode()


def _bad_json(base: dict[str, Any], key_field: str) -> list[Case]:
    text = json.dumps(base)
    inner = text[1:-1]
    return [
        Case("tombstone (null value)", None, MALFORMED),
        Case("empty value", b"", MALFORMED),
        Case("whitespace only", b"  \n", MALFORMED),
        Case("invalid UTF-8", b"\xff\xfe\xfd" + text.encode(), MALFORMED),
        Case("UTF-8 BOM before JSON", b"\xef\xbb\xbf" + text.encode(), MALFORMED),
        Case("NaN", ("{" + inner + ', "x": NaN}').encode(), MALFORMED),
        Case("Infinity", ("{" + inner + ', "x": Infinity}').encode(), MALFORMED),
        Case("-Infinity", ("{" + inner + ', "x": -Infinity}').encode(), MALFORMED),
        Case("float overflow 1e400", ("{" + inner + ', "x": 1e400}').encode(), MALFORMED),
        Case(
            "5,000-digit integer", ("{" + inner + ', "x": ' + "9" * 5000 + "}").encode(), MALFORMED
        ),
        Case("duplicate key", ("{" + inner + ", " + inner + "}").encode(), MALFORMED),
        Case("object nested 80,000 deep", _nested(80_000), MALFORMED),
        Case("array nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, MALFORMED),
        Case("unclosed nesting 50,000 deep", b'{"a":[' * 50_000, MALFORMED),
        Case("nested 65 deep (limit 64)", _nested(65), MALFORMED),
        Case("JSON array", b"[1, 2, 3]", MALFORMED),
        Case("JSON string", b'"just a string"', MALFORMED),
        Case("JSON number", b"42", MALFORMED),
        Case("JSON null", b"null", MALFORMED),
        Case("truncated JSON", text[: len(text) // 2].encode(), MALFORMED),
        Case("raw control character", ("{" + inner + ', "x": "a\x01b"}').encode(), MALFORMED),
        Case("lone surrogate escape", ("{" + inner + ', "x": "\\ud800"}').encode(), MALFORMED),
        Case("binary garbage", bytes(range(256)) * 8, MALFORMED),
        Case("500 KB malformed", b"{" + b"x" * 500_000, MALFORMED),
        Case("2 MB value", _with(base, blob="y" * 2_000_000), OVERSIZED),
        Case("10 MB value", _with(base, blob="z" * 10_000_000), OVERSIZED),
    ]


def _bad_keys(base: dict[str, Any], key_field: str) -> list[Case]:
    path = key_field.split(".")

    def keyed(value: Any) -> bytes:
        event = json.loads(json.dumps(base))
        target = event
        for part in path[:-1]:
            target = target[part]
        if value is _MISSING:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
        return json.dumps(event).encode()

    return [
        Case("key field missing", keyed(_MISSING), NO_KEY),
        Case("key null", keyed(None), NO_KEY),
        Case("key empty string", keyed(""), NO_KEY),
        Case("key an object", keyed({"id": "x"}), NO_KEY),
        Case("key a boolean", keyed(True), NO_KEY),
        Case("key 10,000 characters", keyed("k" * 10_000), NO_KEY),
        # PyFlink's thread mode would hand these to the operator as another key
        # (a leading U+FEFF dropped, U+FFFE byte-swapped): the valid events' own key.
        Case("key starting with U+FEFF", keyed(_bom_prefixed(base, path, "\ufeff")), NO_KEY),
        Case("key starting with U+FFFE", keyed(_bom_prefixed(base, path, "\ufffe")), NO_KEY),
    ]


def _bom_prefixed(base: dict[str, Any], path: list[str], mark: str) -> str:
    """``mark`` + the base event's own key (what a hostile producer would aim at)."""
    from streaming_agents.runtime.keys import value_at

    return mark + str(value_at(base, tuple(path)))


_MISSING = object()


def _valid_variants(base: dict[str, Any]) -> list[Case]:
    text = json.dumps(base).encode()
    return [
        Case("valid, null record key", text, OUTPUT),
        Case("valid, binary record key", text, OUTPUT, key=b"\x00\xff\xfe"),
        Case("valid, with headers", text, OUTPUT, headers=[("h", b"\xff"), ("trace", b"1")]),
        Case("valid, NUL and emoji escapes", _with(base, note="a\u0000b \U0001f600"), OUTPUT),
        Case("valid, format braces", _with(base, note="{k} {0} {__class__} %s"), OUTPUT),
        Case("valid, 300 KB of text", _with(base, note="é" * 150_000), OUTPUT),
        Case("valid, nested 40 deep", _with(base, deep=json.loads(_nested(40))), OUTPUT),
        Case("valid, 4,000-digit integer", _with(base, big=int("7" * 4000)), OUTPUT),
    ]


def corpus(base: dict[str, Any], key_field: str) -> list[Case]:
    """Every hostile case built around ``base`` (a valid event keyed by ``key_field``)."""
    return [*_bad_json(base, key_field), *_bad_keys(base, key_field), *_valid_variants(base)]


def interleaved(
    cases: Sequence[Case], valid: Callable[[int], dict[str, Any]]
) -> list[tuple[Case, dict[str, Any] | None]]:
    """Each case followed by a fresh valid event ``valid(i)`` (``None`` after valid cases)."""
    out: list[tuple[Case, dict[str, Any] | None]] = []
    for i, case in enumerate(cases):
        out.append((case, None))
        follow = valid(i)
        out.append((Case(f"valid #{i}", json.dumps(follow).encode(), OUTPUT), follow))
    return out


def corpus_with_valid_events(key_field: str = "k") -> list[Case]:
    """The corpus around ``{key_field: "base", "seq": 0}``, each case followed by
    a valid event ``{key_field: "v<i mod 4>", "seq": i}`` (what the hostile-input
    tests write to their input topic)."""
    cases = corpus({key_field: "base", "seq": 0}, key_field)
    return [c for c, _ in interleaved(cases, lambda i: {key_field: f"v{i % 4}", "seq": i})]


def create_corpus_topic(
    bootstrap: str, topic: str, *, security: KafkaSecurity | None = None
) -> None:
    """Create ``topic`` (one partition) accepting records up to :data:`TOPIC_MAX_BYTES`."""
    from streaming_agents.testing.kafka import create_topics

    config = {"max.message.bytes": str(TOPIC_MAX_BYTES)}
    create_topics(bootstrap, [topic], security=security, config=config)


def produce_cases(
    bootstrap: str, topic: str, cases: Sequence[Case], *, security: KafkaSecurity | None = None
) -> None:
    """Write every case in order (idempotent producer, acks=all) and wait for the acks."""
    from streaming_agents.testing.kafka import produce

    records = [(case.key, case.value, case.headers) for case in cases]
    conf = {"message.max.bytes": TOPIC_MAX_BYTES}
    produce(bootstrap, topic, records, timeout_s=60, security=security, conf=conf)
