"""Checks shared by the hostile-input tests (mini-cluster and standalone cluster)."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from streaming_agents.runtime.events import Limits
from streaming_agents.testing.hostile import OUTPUT, Case
from streaming_agents.testing.kafka import consume_committed


def collect(
    bootstrap: str, cases: list[Case], out_topic: str, dlq_topic: str, timeout_s: float = 120
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The committed outputs and dead letters, every record checked against the size limit."""
    n_out = sum(c.expect == OUTPUT for c in cases)
    with ThreadPoolExecutor(2) as pool:  # both read (and linger for extras) at the same time
        reading = pool.submit(
            consume_committed, bootstrap, out_topic, expected=n_out, linger_s=2, timeout_s=timeout_s
        )
        dlq = consume_committed(
            bootstrap, dlq_topic, expected=len(cases) - n_out, linger_s=2, timeout_s=timeout_s
        )
        outs = reading.result()
    limit = Limits().max_record_bytes
    too_big = [len(m.value()) for m in [*outs, *dlq] if len(m.value()) > limit]
    assert not too_big, f"records above {limit} bytes: {too_big}"
    return [json.loads(m.value()) for m in outs], [json.loads(m.value()) for m in dlq]


def check_outcomes(
    cases: list[Case], outputs: list[dict[str, Any]], dead: list[dict[str, Any]], topic: str
) -> None:
    """One output per valid case, one dead letter with the expected reason per bad one."""
    got: dict[int, list[str]] = {}
    for out in outputs:
        got.setdefault(out["source"]["offset"], []).append(OUTPUT)
    for letter in dead:
        assert letter["source"]["topic"] == topic and letter["error"], letter
        got.setdefault(letter["source"]["offset"], []).append(
            f"{letter['reason']}: {letter['error'][:160]}"
        )
    wrong = [
        f"offset {i} {case.name!r}: expected {case.expect!r}, got {got.get(i, [])}"
        for i, case in enumerate(cases)
        if [o.split(":")[0] for o in got.get(i, [])] != [case.expect]
    ]
    extra = sorted(set(got) - set(range(len(cases))))
    assert not wrong and not extra, "\n".join([*wrong, f"unexpected offsets: {extra}"])
    for letter in dead:
        value = cases[letter["source"]["offset"]].value
        if value is not None:
            assert letter["original"]["sha256"] == hashlib.sha256(value).hexdigest()
