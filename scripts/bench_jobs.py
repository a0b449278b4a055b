"""The measured workloads, each run in its own child process by ``scripts.bench``.

``python -m scripts.bench_jobs KIND 'JSON-PARAMS'`` prints one line
``RESULT {...}`` on stdout.  Kinds:

* ``ceiling``: plain asyncio + ``litellm.acompletion`` (no Flink) sending the
  same conversations the agent sends: one chain of turns per key, at most
  ``concurrency`` calls in flight.
* ``operator``: ``run_agent`` on the local mini-cluster (parallelism 1) over
  a bounded ``from_collection`` source; outputs are collected and counted.
* ``baseline``: a synchronous PyFlink ``map`` calling ``litellm.completion``.

A child process per workload keeps every JVM, litellm import and event loop
fresh, and lets the driver measure its CPU from ``/proc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

import cloudpickle  # type: ignore[import-untyped]

from streaming_agents import Agent, ConversationMemory, LLMResult, MemoryPolicy, ModelSpec, Turn
from streaming_agents.runtime.keys import json_key

# The Flink workers cannot import ``scripts``: ship this module's functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEY_ENV = "FAKE_LLM_API_KEY"
# A model litellm's cost map knows (served by the fake LLM at ``api_base``): the
# cost path of a known model is what deployments run (``--model`` in scripts/bench.py).
MODEL = os.environ.get("SA_BENCH_MODEL", "openai/gpt-4o-mini")

__all__ = ["KEY_ENV", "events", "main"]


def events(n_keys: int, per_key: int) -> list[str]:
    """``{"k": "k<i>", "seq": <j>}`` JSON events, keys interleaved (seq 0 of every key first)."""
    return [json.dumps({"k": f"k{k}", "seq": s}) for s in range(per_key) for k in range(n_keys)]


# --------------------------------------------------------------------------- ceiling


async def _ceiling(p: dict[str, Any]) -> dict[str, Any]:
    from streaming_agents.llm.litellm_client import import_litellm

    litellm = import_litellm()
    api_key = os.environ[KEY_ENV]
    sem = asyncio.Semaphore(int(p["concurrency"]))
    max_messages = 2 * int(p.get("max_turns", 20))
    done = 0

    async def chain(k: int) -> None:
        nonlocal done
        history: list[dict[str, str]] = []
        for s in range(int(p["per_key"])):
            prompt = f"k{k}#{s}"
            messages = [*history, {"role": "user", "content": prompt}]
            async with sem:
                resp = await litellm.acompletion(
                    model=MODEL,
                    messages=messages,
                    api_base=p["base_url"],
                    api_key=api_key,
                    timeout=60,
                    num_retries=0,
                    max_retries=0,
                )
            reply = resp.choices[0].message.content or ""
            history = [*messages, {"role": "assistant", "content": reply}][-max_messages:]
            done += 1

    started = time.time()
    await asyncio.gather(*(chain(k) for k in range(int(p["n_keys"]))))
    return {"n": done, "wall_s": time.time() - started}


# --------------------------------------------------------------------------- operator


def _scale_reduce(
    event: Any, memory: ConversationMemory, result: LLMResult
) -> tuple[ConversationMemory, list[Any]]:
    """Default reduce, but a key's first event first fills memory with synthetic turns."""
    fill = int(event.get("prefill", 0))
    if memory.turn_count == 0 and fill:
        # deterministic, hardly compressible text: random hex seeded by the key (reduce is pure)
        chars = int(event.get("turn_chars", 200))
        blob = random.Random(event["k"]).randbytes(fill * chars // 2 + 1).hex()
        cut = chars // 3
        turns = [
            Turn(
                user=blob[i * chars : i * chars + cut],
                assistant=blob[i * chars + cut : (i + 1) * chars],
            )
            for i in range(fill)
        ]
        memory = memory.model_copy(update={"turns": turns, "turn_count": fill})
    prompt = f"{event['k']}#{event['seq']}"
    return memory.with_turn(prompt, result.content), [result.content]


def _short_step(event: Any, memory: ConversationMemory) -> Any:
    """Send only the new prompt, so request cost does not depend on memory size."""
    from streaming_agents import LLMRequest

    return LLMRequest(messages=({"role": "user", "content": f"{event['k']}#{event['seq']}"},))


def _agent(p: dict[str, Any]) -> Agent[Any]:
    model = ModelSpec(model=MODEL, api_base=p["base_url"], api_key_env=KEY_ENV)
    policy = MemoryPolicy(max_turns=int(p.get("max_turns", 20)))
    if p.get("prefill"):
        return Agent(
            name=p.get("agent", "bench-scale"),
            version="1",
            model=model,
            prompt="{k}#{seq}",
            policy=policy,
            step_fn=_short_step,
            reduce_fn=_scale_reduce,
        )
    return Agent(name=p.get("agent", "bench"), version="1", model=model, prompt="{k}#{seq}")


def _stamp(line: str) -> str:
    return f"{time.time():.6f} {line}"


def _fill_journal(agent: Agent[Any], journal: Any, raw: list[str]) -> int:
    """Pre-answer every call of ``raw`` in the journal (the agent's step ignores memory)."""
    from streaming_agents.llm.journal import request_digest

    empty = ConversationMemory()
    for line in raw:
        event = json.loads(line)
        request = agent.step(event, empty)
        digest = request_digest(agent.name, event["k"], agent.model, request)
        journal.put(digest, LLMResult(content=f"journal[{event['k']}#{event['seq']}]"))
    journal.close()
    return len(raw)


def _operator(p: dict[str, Any]) -> dict[str, Any]:
    from pyflink.common import Types

    from streaming_agents import NullJournal, SqliteJournal, dead_letters, run_agent
    from streaming_agents.runtime.environment import local_env

    started = time.time()
    extra = {"rest.port": str(p["rest_port"])} if p.get("rest_port") else {}
    if p.get("rocksdb_dir"):
        extra["state.backend.rocksdb.localdir"] = p["rocksdb_dir"]
    if p.get("unaligned"):  # barriers overtake records queued under back-pressure
        extra["execution.checkpointing.unaligned.enabled"] = "true"
    if p.get("checkpoint_dir"):
        extra["execution.checkpointing.externalized-checkpoint-retention"] = (
            "RETAIN_ON_CANCELLATION"
        )
    env = local_env(
        checkpoint_interval_ms=p.get("checkpoint_interval_ms"),
        state_backend=p.get("backend", "hashmap"),
        checkpoint_dir=p.get("checkpoint_dir"),
        extra_config=extra,
    )
    raw = events(int(p["n_keys"]), int(p["per_key"]))
    if p.get("prefill"):
        extra_fields = f', "prefill": {int(p["prefill"])}, "turn_chars": {int(p["turn_chars"])}}}'
        raw = [e[:-1] + extra_fields for e in raw]
    source = env.from_collection(raw, type_info=Types.STRING())
    keyed = source.key_by(json_key("k"), key_type=Types.STRING())
    journal: Any = NullJournal()
    if p.get("journal"):  # a URI (kafka://..., resolved on the worker) or a SQLite file
        journal = p["journal"] if "://" in p["journal"] else SqliteJournal(p["journal"])
    agent = _agent(p)
    if "backlog_per_capacity" in p:  # 0: the operator without back-pressure (the old drain)
        from streaming_agents.runtime import operator

        operator.BACKLOG_PER_CAPACITY = int(p["backlog_per_capacity"])
    filled = _fill_journal(agent, journal, raw) if p.get("fill_journal") else 0
    out = run_agent(
        keyed,
        agent,
        capacity=int(p["capacity"]),
        journal=journal,
        llm_processes=int(p.get("llm_processes", 0)),
    )
    # Stamp each output where the operator emits it (the map is chained to it): with
    # checkpointing on, execute_and_collect only releases results after each checkpoint.
    stamped = out.union(dead_letters(out)).map(_stamp, output_type=Types.STRING())
    built = time.time()
    n_out = n_dead = 0
    stamps: list[float] = []
    for line in stamped.execute_and_collect():
        stamp, _, body = line.partition(" ")
        stamps.append(float(stamp))
        if body.startswith('{"agent"'):
            n_out += 1
        else:
            n_dead += 1
    return {
        "n": n_out,
        "dead": n_dead,
        "build_s": built - started,
        "journal_filled": filled,
        "wall_s": time.time() - started,
        "out_first": min(stamps, default=float("inf")),
        "out_last": max(stamps, default=0.0),
        "out_median": sorted(stamps)[len(stamps) // 2] if stamps else 0.0,
    }


# --------------------------------------------------------------------------- baseline


def _sync_map_function(base_url: str) -> Any:
    from pyflink.datastream import MapFunction

    class SyncLLMMap(MapFunction):  # type: ignore[misc]
        """One blocking ``litellm.completion`` per element."""

        def open(self, runtime_context: Any) -> None:
            from streaming_agents.llm.litellm_client import import_litellm

            self.litellm = import_litellm()
            self.key = os.environ[KEY_ENV]

        def map(self, value: str) -> str:
            event = json.loads(value)
            resp = self.litellm.completion(
                model=MODEL,
                messages=[{"role": "user", "content": f"{event['k']}#{event['seq']}"}],
                api_base=base_url,
                api_key=self.key,
                timeout=60,
                num_retries=0,
                max_retries=0,
            )
            return str(resp.choices[0].message.content)

    return SyncLLMMap()


def _baseline(p: dict[str, Any]) -> dict[str, Any]:
    from pyflink.common import Types

    from streaming_agents.runtime.environment import local_env

    started = time.time()
    env = local_env(checkpoint_interval_ms=None)
    source = env.from_collection(
        events(int(p["n_keys"]), int(p["per_key"])), type_info=Types.STRING()
    )
    mapped = source.map(_sync_map_function(p["base_url"]), output_type=Types.STRING())
    n = sum(1 for _ in mapped.execute_and_collect())
    return {"n": n, "wall_s": time.time() - started}


def main(argv: list[str]) -> int:
    kind, params = argv[0], json.loads(argv[1])
    if kind == "ceiling":
        result = asyncio.run(_ceiling(params))
    elif kind == "operator":
        result = _operator(params)
    elif kind == "baseline":
        result = _baseline(params)
    else:
        raise SystemExit(f"unknown workload {kind!r}")
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
