"""``streaming-agents history``: one key's memory as it was at a past decision (time travel).

``history --agent MODULE:ATTR --key K --input-topic T --journal URI [--job J]
[--key-field F] [--at-offset N | --at-time TIME] [--json]`` reads the key's
events from the input topic up to the point, replays the agent's event
processing on them in this process with every LLM reply and tool result taken
from production's journal (:mod:`streaming_agents.replay.history`), and prints
the memory there and the requests and replies that led to it.  It never calls
an LLM or runs a tool: a call the journal cannot answer is reported and the
command stops (exit 1).  Exit 2 for user errors (no such key, bad options).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from streaming_agents.cli.job_options import BOOTSTRAP_ENV, add_security_argument, security_of
from streaming_agents.errors import ConfigError

__all__ = ["add_history_command", "run_history"]

_PREVIEW = 400


def add_history_command(subparsers: Any) -> None:
    """Add ``history`` to the CLI's subparsers (``handler``: :func:`run_history`)."""
    hp = subparsers.add_parser(
        "history",
        help="time travel: a key's memory at a past decision, rebuilt from input and journal",
        description=(
            "Rebuild one key's memory as it was at a past decision: read the key's events "
            "from the input topic up to --at-offset/--at-time, run the agent on them in this "
            "process with every LLM reply and tool result taken from production's journal, "
            "and print the memory and the requests and replies that led there. Never calls "
            "an LLM: a call missing from the journal stops the command (exit 1)."
        ),
    )
    hp.add_argument("--agent", required=True, metavar="MODULE:ATTR", help="production's agent")
    hp.add_argument("--key", required=True, help="the key whose memory to rebuild")
    hp.add_argument(
        "--input-topic", required=True, action="append", metavar="TOPIC",
        help="production's input topic (repeatable)",
    )  # fmt: skip
    hp.add_argument(
        "--journal",
        default=None,
        metavar="URI",
        help="production's journal, read-only: kafka://HOST:PORT/TOPIC or sqlite:///PATH "
        "(default: $STREAMING_AGENTS_JOURNAL)",
    )
    hp.add_argument("--job", default=None, help="production's job name (the journal's scope)")
    hp.add_argument("--key-field", default="key", metavar="FIELD", help="field production keys by")
    point = hp.add_mutually_exclusive_group()
    point.add_argument("--at-offset", type=int, default=None, metavar="N", help="input offset")
    point.add_argument("--at-time", default=None, metavar="TIME", help="ISO-8601 or epoch ms")
    hp.add_argument("--json", action="store_true", help="print the history as JSON")
    hp.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (default: ${BOOTSTRAP_ENV}, else localhost:9092)",
    )
    add_security_argument(hp)
    hp.set_defaults(handler=run_history)


def _scoped(uri: str, job: str | None) -> str:
    """``uri`` with ``scope=job`` added (a scope already in the URI wins)."""
    from streaming_agents.journal.factory import as_journal_uri

    uri = as_journal_uri(uri)
    if not job:
        return uri
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("scope", job)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _at_time(text: str | None) -> int | None:
    if text is None:
        return None
    from streaming_agents.replay.ranges import parse_position

    position = parse_position(text, what="--at-time")
    if position.kind != "timestamp" or position.timestamp_ms is None:
        raise ConfigError(f"--at-time {text!r}: give an ISO-8601 time or epoch milliseconds")
    return position.timestamp_ms


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _print_text(doc: dict[str, Any]) -> None:
    decisions = doc["decisions"]
    print(f"key {doc['key']!r} of {doc['agent']}@{doc['version']}: {len(decisions)} decisions, "
          f"{doc['llm_calls_answered_from_journal']} LLM replies from the journal, "
          "0 LLM calls made")  # fmt: skip
    for n, d in enumerate(decisions, 1):
        print(f"\n[{n}] {d['topic']}[{d['partition']}]@{d['offset']} (ts {d['timestamp_ms']})")
        print(f"  event: {_short(d['event'])}")
        for call in d["calls"]:
            if call["kind"] == "llm":
                last = (call["request"].get("messages") or [{}])[-1]
                print(f"  request ({len(call['request'].get('messages') or [])} messages), "
                      f"last: {_short(last.get('content'))}")  # fmt: skip
                print(f"  reply: {_short(call['reply'])}")
            else:
                print(f"  tool {call['call'].get('name')}: {_short(call['result'])}")
        print(f"  -> {d['outcome']}" + (f": {_short(d['outputs'])}" if d["outputs"] else ""))
    print("\nmemory:")
    print(json.dumps(doc["memory"], indent=2, sort_keys=True, default=str))


def run_history(args: argparse.Namespace) -> int:
    from streaming_agents.replay.history import JournalGap, reconstruct
    from streaming_agents.replay.loading import load_agent

    journal = args.journal or os.environ.get("STREAMING_AGENTS_JOURNAL")
    if not journal:
        raise ConfigError("no journal: give --journal URI (production's journal)")
    agent = load_agent(args.agent)
    history = reconstruct(
        agent,
        bootstrap=str(args.bootstrap or os.environ.get(BOOTSTRAP_ENV) or "localhost:9092"),
        topics=args.input_topic,
        key=args.key,
        journal=_scoped(journal, args.job),
        key_field=args.key_field,
        at_offset=args.at_offset,
        at_time_ms=_at_time(args.at_time),
        security=security_of(args),
    )
    doc = history.to_dict()
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        _print_text(doc)
    if history.gap is not None:
        raise JournalGap(f"stopped before the point asked for: {history.gap} (no LLM was called)")
    return 0
