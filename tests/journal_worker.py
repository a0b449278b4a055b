"""A separate process for the journal and ledger tests (run as a script).

``append BOOTSTRAP TOPIC N``: appends N results (key k<i>, digest d<i>) to a
Kafka journal, prints ``acked <i>`` after each acknowledgement and then
waits to be killed.

``race BOOTSTRAP TOPIC AGENT WINDOW MAX_TOKENS RESERVE CALLS CONCURRENCY SEED``:
makes CALLS simulated calls through a Kafka ledger, CONCURRENCY at a time:
each reserves RESERVE tokens, "spends" a random 5..40 tokens when granted,
and settles.  Prints one JSON line: granted, refused, actual spend.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from streaming_agents.agent import LLMResult
from streaming_agents.journal.factory import open_journal, open_ledger
from streaming_agents.journal.ledger import BudgetLimits


async def _append(bootstrap: str, topic: str, count: int) -> None:
    journal = open_journal(f"kafka://{bootstrap}/{topic}?partitions=4", agent="a", job="kill")
    for i in range(count):
        await journal.append(f"k{i}", f"d{i}", LLMResult(content=f"answer {i}", model="m"))
        print(f"acked {i}", flush=True)
    print("done", flush=True)
    await asyncio.Event().wait()  # until killed


async def _race(args: list[str]) -> None:
    bootstrap, topic, agent = args[0], args[1], args[2]
    window, max_tokens, reserve = int(args[3]), int(args[4]), int(args[5])
    calls, concurrency, seed = int(args[6]), int(args[7]), int(args[8])
    rng = random.Random(seed)
    ledger = open_ledger(f"kafka://{bootstrap}/{topic}", agent=agent, window_s=3600)
    limits = BudgetLimits(max_tokens, None)
    outcome = {"granted": 0, "refused": 0, "actual": 0, "max_in_flight": 0}
    in_flight = 0
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal in_flight
        async with gate:
            granted = await ledger.reserve(agent, window, limits, reserve, 0.0)
            if granted is None:
                outcome["refused"] += 1
                return
            in_flight += 1
            outcome["max_in_flight"] = max(outcome["max_in_flight"], in_flight)
            spent = rng.randint(5, 40)
            await asyncio.sleep(rng.uniform(0.005, 0.03))  # the call's latency
            in_flight -= 1
            outcome["granted"] += 1
            outcome["actual"] += spent
            await ledger.settle(granted, spent, 0.0)

    await asyncio.gather(*(one() for _ in range(calls)))
    ledger.close()
    print(json.dumps(outcome), flush=True)


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "append":
        asyncio.run(_append(args[0], args[1], int(args[2])))
    else:
        asyncio.run(_race(args))


if __name__ == "__main__":
    main()
