"""Fail loudly: a run whose events mostly went to the dead letters exits non-zero.

A replay whose LLM is unreachable used to end with ``outputs=0, dead_letters=12``
and exit 0.  After ``replay``, ``shadow`` and a bounded ``run``, the command counts
the events it dead-lettered; when their share exceeds ``--max-dead-letter-ratio``
(default 0.5, or ``$STREAMING_AGENTS_MAX_DEAD_LETTER_RATIO``; 1 turns the check
off) it fails with one line naming the count and the most common reasons, and exits 1.
An unbounded ``run`` ends only with Ctrl-C (or SIGTERM): it then prints the same line
for what it committed, and exits 130 as any interrupted command.  ``sql`` judges each
statement of a script the same way (records dead-lettered or rows an AI function
answered FAILED, counted by :mod:`streaming_agents.sql.tally`; :func:`check_parts`
keeps it to one line).
The job itself never fails on data: this is the command's verdict on the run.

Also here: :func:`quiet_environment`, the logging defaults every command sets
before a JVM or litellm starts (the Flink workers inherit them).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Iterable

from streaming_agents.errors import ConfigError, RuntimeFailure

__all__ = [
    "DEFAULT_MAX_DEAD_LETTER_RATIO",
    "RATIO_ENV",
    "MostlyDeadLettered",
    "add_dead_letter_argument",
    "check_dead_letters",
    "check_parts",
    "dead_letter_reason",
    "max_dead_letter_ratio",
    "quiet_environment",
]

RATIO_ENV = "STREAMING_AGENTS_MAX_DEAD_LETTER_RATIO"
DEFAULT_MAX_DEAD_LETTER_RATIO = 0.5


class MostlyDeadLettered(RuntimeFailure):
    """More of a run's events were dead-lettered than the allowed share."""


def quiet_environment() -> None:
    """litellm logs warnings only and uses its bundled cost map (no fetch at import).

    Set before any JVM starts, so the Flink workers of this process inherit it; a
    value the user exported wins.
    """
    os.environ.setdefault("LITELLM_LOG", "WARNING")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def add_dead_letter_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-dead-letter-ratio",
        type=float,
        default=None,
        metavar="R",
        help="exit 1 when more than this share of the events was dead-lettered "
        f"(0..1; default ${RATIO_ENV}, else {DEFAULT_MAX_DEAD_LETTER_RATIO}; 1 disables)",
    )


def max_dead_letter_ratio(args: argparse.Namespace) -> float:
    """The threshold of ``args`` (option, else environment, else the default), checked."""
    value: object = args.max_dead_letter_ratio
    if value is None:
        value = os.environ.get(RATIO_ENV) or DEFAULT_MAX_DEAD_LETTER_RATIO
    try:
        ratio = float(str(value))
    except ValueError:
        raise ConfigError(f"max dead-letter ratio must be a number, got {value!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"max dead-letter ratio must be between 0 and 1, got {ratio:g}")
    return ratio


def dead_letter_reason(record: dict[str, object]) -> str:
    """``reason: first line of the error`` of a dead-letter record."""
    reason = str(record.get("reason") or "unknown")
    error = str(record.get("error") or "").strip().splitlines()
    return f"{reason}: {error[0][:120]}" if error else reason


def check_dead_letters(
    what: str, total: int, reasons: Iterable[str], ratio: float, *, failed: str = "dead-lettered"
) -> None:
    """Raise :class:`MostlyDeadLettered` when ``reasons`` (one per dead letter) exceed ``ratio``.

    ``failed``: what happened to those events, for the message (``sql`` also
    counts rows an AI function answered ``FAILED``).
    """
    counted = Counter(reasons)
    dead = sum(counted.values())
    if total <= 0 or dead / total <= ratio:
        return
    common = "; ".join(f"{n} x {r}" for r, n in counted.most_common(2))
    raise MostlyDeadLettered(
        f"{what}: {dead} of {total} events {failed} ({dead / total:.0%}, above "
        f"--max-dead-letter-ratio {ratio:g}); most common: {common}"
    )


def check_parts(
    parts: Iterable[tuple[str, int, list[str]]], ratio: float, *, failed: str = "dead-lettered"
) -> None:
    """:func:`check_dead_letters` over the parts of one run (``(what, total, reasons)`` each).

    Still one line: the part with the largest failed share, and how many
    others are above the ratio too.
    """
    over = []
    for what, total, reasons in parts:
        try:
            check_dead_letters(what, total, reasons, ratio, failed=failed)
        except MostlyDeadLettered as exc:
            over.append((len(reasons) / total, exc))
    if not over:
        return
    over.sort(key=lambda found: -found[0])
    worst = over[0][1]
    if len(over) > 1:
        raise MostlyDeadLettered(f"{worst} (and {len(over) - 1} more above the ratio)")
    raise worst


def reasons_of(values: Iterable[bytes | str | None]) -> list[str]:
    """Reasons of dead-letter record values (JSON); unreadable ones count as ``unknown``."""
    out = []
    for value in values:
        try:
            record = json.loads(value or "{}")
        except ValueError:
            record = {}
        out.append(dead_letter_reason(record if isinstance(record, dict) else {}))
    return out
