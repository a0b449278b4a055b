"""The SQL runner's ``--rest`` tally: workers' counts through a real Kafka topic.

Two workers' functions (each a pickled :class:`Tally`, as Flink ships them)
count into one run's target; a second run on the same topic is not mixed in;
counts sent before ``close()`` (the once-a-second sends, here each time) and
at ``close()`` both arrive, each once; a target the broker cannot serve gives
no verdict rather than a failed job.
"""

from __future__ import annotations

import pickle

import pytest

from streaming_agents.sql import tally_kafka
from streaming_agents.sql.tally import AI, INPUT, Tally, read_tallies
from streaming_agents.sql.tally_kafka import RemoteTally


def _count(target: str, number: int, kind: str, good: int, bad: list[str]) -> Tally:
    tally = pickle.loads(pickle.dumps(Tally(target, number, 3 * number, kind)))
    for _ in range(good):
        tally.ok()
    for reason in bad:
        tally.failed(reason)
    return tally


def test_workers_count_into_the_run_s_topic(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = RemoteTally()
    assert run.resolve([]) is None and "no Kafka JSON table" in run.problem
    target = run.resolve([kafka_bootstrap])
    assert target is not None and run.target == target and "run=" + run.run in target
    other = RemoteTally()
    other_target = other.resolve([kafka_bootstrap])
    assert other_target is not None and other_target != target

    first = _count(target, 2, INPUT, 5, ["malformed event: bad JSON\nline 2"] * 2)
    second = _count(target, 2, INPUT, 1, ["type mismatch: column 'n'"])
    agent = _count(target, 2, AI, 6, [])
    noise = _count(other_target, 2, INPUT, 9, [])
    for tally in (first, second, agent, noise):
        tally.close()
    monkeypatch.setattr(tally_kafka, "_SEND_EVERY_S", 0.0)  # each count sent as it comes
    late = _count(target, 4, AI, 2, ["llm error: connection refused"])
    late.close()  # nothing left to send: the sums already went

    counted = read_tallies(target, run.client)
    assert [(c.number, c.line, c.inputs, c.ai_rows) for c in counted] == [
        (2, 6, 9, 6),
        (4, 12, 0, 3),
    ]
    assert counted[0].dead == {"malformed event: bad JSON": 2, "type mismatch: column 'n'": 1}
    assert counted[1].failed == {"llm error: connection refused": 1}
    assert [(c.number, c.inputs) for c in read_tallies(other_target)] == [(2, 9)]


def test_a_broker_that_cannot_be_reached_gives_no_verdict_not_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tally_kafka, "_CREATE_TIMEOUT_S", 2.0)
    run = RemoteTally({"socket.timeout.ms": 1000})
    assert run.resolve(["127.0.0.1:1"]) is None
    assert run.problem.startswith("cannot create topic streaming-agents.sql-tally on 127.0.0.1:1")
    assert run.resolve(["127.0.0.1:1"]) is None  # asked once
