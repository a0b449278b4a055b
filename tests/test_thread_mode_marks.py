"""Why a key may not start with a byte-order mark: what PyFlink's thread mode does to one.

A tiny keyed job on the mini-cluster, in thread mode (the agent operator's):
the key selector (Python) returns ``"\\ufeffbase"``, ``"\\ufffeab"`` and
``"base"``; a KeyedProcessFunction reports what ``ctx.get_current_key()``
gives it.  PyFlink 2.3 hands it ``"base"`` for the first (a leading U+FEFF
dropped) and a byte-swapped string for the second, so two Flink keys look
like one to the operator.  ``runtime.keys.mark_problem`` refuses such keys
and strings for that reason; if a PyFlink upgrade stops altering them, this
test fails and the rule can be reconsidered.
"""

from __future__ import annotations

import json
from typing import Any


def test_thread_mode_alters_a_key_starting_with_a_byte_order_mark() -> None:
    from pyflink.common import Configuration, Types
    from pyflink.datastream import KeyedProcessFunction

    from streaming_agents.runtime.environment import local_env
    from streaming_agents.runtime.keys import mark_problem

    class SeenKey(KeyedProcessFunction):  # type: ignore[misc]
        def process_element(self, value: str, ctx: Any) -> Any:
            yield json.dumps([json.loads(value), ctx.get_current_key()])

    env = local_env(checkpoint_interval_ms=None)
    config = Configuration()
    config.set_string("python.execution-mode", "thread")
    env.configure(config)
    env.set_parallelism(1)
    keys = ["\ufeffbase", "\ufffeab", "base", "x\ufeffy"]
    source = env.from_collection([json.dumps(k) for k in keys], type_info=Types.STRING())
    seen = dict(
        json.loads(line)
        for line in source.key_by(json.loads, key_type=Types.STRING())
        .process(SeenKey(), output_type=Types.STRING())
        .execute_and_collect()
    )
    assert seen == {"\ufeffbase": "base", "\ufffeab": "\u6100\u6200", "base": "base",
                    "x\ufeffy": "x\ufeffy"}  # fmt: skip
    assert [k for k in keys if mark_problem(k) is not None] == ["\ufeffbase", "\ufffeab"]
