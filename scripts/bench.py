"""``make bench``: agent operator vs plain litellm vs a synchronous map, one run, one table.

Usage: ``python -m scripts.bench [--quick] [--no-write] [size flags]`` (see ``--help``);
``--only f`` (or ``--only replay-stream``) runs one section, e.g. the bounded
"replay that streams" runs (time to first output, checkpoint durations);
``--only g`` (or ``--only journal``) the journal backends side by side (no
journal, SQLite, Kafka on a local broker this run starts, then the same events
again answered from Kafka).  A run of ``g`` alone with writing on replaces only
its own block of ``docs/benchmarks.md``.
Every workload runs in a child process (``scripts.bench_jobs``) against one
fake LLM subprocess; the driver measures it from outside (``scripts.bench_probe``)
and writes the table to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scripts.bench_probe import Probe, ProbeResult, dir_size
from scripts.bench_report import (
    Row,
    Run,
    goals,
    journal_section,
    render,
    splice_section,
    write_doc,
)
from streaming_agents.testing.fake_llm import FakeLLM

KEY_ENV = "FAKE_LLM_API_KEY"
ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ["a", "b", "c", "d", "e", "f", "g"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes (about 2-3 minutes)")
    ap.add_argument("--keys", type=int, help="keys of the main runs (default 1000)")
    ap.add_argument("--per-key", type=int, help="events per key of the main runs (default 10)")
    ap.add_argument("--capacities", type=int, nargs="+", help="default 100 500")
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument(
        "--llm-processes",
        type=int,
        nargs="+",
        default=[0, 2],
        help="run_agent(llm_processes=...) values of the (b) rows; 0 = litellm in the operator",
    )
    ap.add_argument(
        "--model",
        default="openai/gpt-4o-mini",
        help="litellm model string sent to the fake LLM; one in litellm's cost map by default "
        "(an unknown model costs litellm ~2 ms more CPU per call in its cost lookup)",
    )
    ap.add_argument("--baseline-events", type=int, help="sync map events (default 100)")
    ap.add_argument("--scale-keys", type=int, help="keys of the RocksDB run (default 100000)")
    ap.add_argument("--scale-per-key", type=int, default=1, help="events per key at scale")
    ap.add_argument("--scale-turns", type=int, default=20, help="memory turns per key")
    ap.add_argument("--turn-chars", type=int, default=200, help="chars of one synthetic turn")
    ap.add_argument(
        "--scale-llm-calls",
        action="store_true",
        help="at scale, call the fake LLM (L=0) instead of a pre-filled journal (slow)",
    )
    ap.add_argument("--checkpoint-interval-ms", type=int, default=10_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    ap.add_argument(
        "--only",
        nargs="+",
        choices=[*SECTIONS, "replay-stream", "journal"],
        help="run only these sections (replay-stream = f, journal = g)",
    )
    ap.add_argument(
        "--stream-checkpoint-ms",
        type=int,
        default=2_000,
        help="checkpoint interval of (f), the bounded 'replay that streams' runs",
    )
    ap.add_argument(
        "--stream-variants",
        nargs="+",
        choices=["before", "after"],
        default=["before", "after"],
        help="(f): before = the operator without back-pressure (its old end-of-input drain) "
        "and aligned checkpoints; after = back-pressure and unaligned checkpoints, as replays run",
    )
    ap.add_argument(
        "--journal-capacity", type=int, default=500, help="C of (g), the journal backends"
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument(
        "--work-dir", default=str(ROOT / ".run" / "bench"), help="logs, state, checkpoints"
    )
    args = ap.parse_args(argv)
    if args.only:
        aliases = {"replay-stream": "f", "journal": "g"}
        only = {aliases.get(s, s) for s in args.only}
        args.skip = [s for s in SECTIONS if s not in only]
    quick = args.quick
    args.keys = args.keys or (200 if quick else 1000)
    args.per_key = args.per_key or (2 if quick else 10)
    args.capacities = args.capacities or [100, 500]
    args.baseline_events = args.baseline_events or (10 if quick else 100)
    args.scale_keys = args.scale_keys or (5_000 if quick else 100_000)
    if quick:
        args.checkpoint_interval_ms = min(args.checkpoint_interval_ms, 2_000)
    return args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bench:
    """Runs workloads in child processes against one fake LLM."""

    def __init__(self, fake: FakeLLM, work: Path) -> None:
        self.fake = fake
        self.work = work
        self._n = 0

    def run(
        self,
        kind: str,
        latency_ms: float,
        *,
        rest: bool = False,
        watch: dict[str, str] | None = None,
        **params: Any,
    ) -> tuple[dict[str, Any], ProbeResult]:
        self._n += 1
        self.fake.configure({"latency_ms": latency_ms})
        self.fake.reset()
        params["base_url"] = self.fake.base_url
        port = _free_port() if rest else None
        if port is not None:
            params["rest_port"] = port
        log = self.work / f"{self._n:02d}-{kind}.log"
        cmd = [sys.executable, "-m", "scripts.bench_jobs", kind, json.dumps(params)]
        with open(log, "w") as out:
            child = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            with Probe(self.fake, child.pid, rest_port=port, watch_dirs=watch) as probe:
                code = child.wait()
        text = log.read_text(errors="replace")
        results = [line for line in text.splitlines() if line.startswith("RESULT ")]
        if code != 0 or not results:
            raise RuntimeError(f"{kind} {params} failed (exit {code}); log {log}:\n{text[-3000:]}")
        return json.loads(results[-1][7:]), probe.result


def _ceiling_row(
    bench: Bench, a: argparse.Namespace, c: int, lat: float, section: str = "a"
) -> Row:
    res, pr = bench.run("ceiling", lat, n_keys=a.keys, per_key=a.per_key, concurrency=c)
    return Row(section, f"asyncio + litellm.acompletion, C={c}", Run(res, pr), c, lat, a.keys)


def _operator_row(
    bench: Bench, a: argparse.Namespace, label: str, c: int, lat: float, **kw: Any
) -> Row:
    kw.setdefault("n_keys", a.keys)
    kw.setdefault("per_key", a.per_key)
    res, pr = bench.run("operator", lat, capacity=c, **kw)
    expected = kw["n_keys"] * kw["per_key"]
    if res["n"] != expected or res["dead"]:
        raise RuntimeError(f"{label}: {res['n']} outputs, {res['dead']} dead (want {expected})")
    return Row(label[0], label[2:], Run(res, pr), c, lat, kw["n_keys"])


def measure(a: argparse.Namespace, bench: Bench) -> list[Row]:
    rows: list[Row] = []
    lat = a.latency_ms
    if "a" not in a.skip:
        rows += [_ceiling_row(bench, a, c, lat) for c in a.capacities]
    if "b" not in a.skip:
        for c in a.capacities:
            for p in a.llm_processes:
                label = f"b run_agent, NullJournal, C={c}" + (f", {p} call workers" if p else "")
                rows.append(_operator_row(bench, a, label, c, lat, llm_processes=p))
    if "c" not in a.skip:
        res, pr = bench.run("baseline", lat, n_keys=a.baseline_events, per_key=1)
        rows.append(Row("c", "sync PyFlink map + litellm.completion", Run(res, pr), 1, lat, 0))
    if "d" not in a.skip:
        c = a.capacities[0]
        rows.append(_ceiling_row(bench, a, c, 0.0, "d"))
        rows.append(_operator_row(bench, a, f"d run_agent, NullJournal, C={c}", c, 0.0))
        if max(a.llm_processes) > 0:
            p = max(a.llm_processes)
            label = f"d run_agent, NullJournal, C={c}, {p} call workers"
            rows.append(_operator_row(bench, a, label, c, 0.0, llm_processes=p))
        journal = str(bench.work / "journal" / "bench.sqlite")
        rows.append(
            _operator_row(bench, a, "d run_agent, SqliteJournal, 1st run", c, 0.0, journal=journal)
        )
        row = _operator_row(bench, a, "d same events again: journal hits", c, 0.0, journal=journal)
        if row.run.probe.requests != 0 or bench.fake.stats()["requests_total"] != 0:
            raise RuntimeError(f"journal replay reached the fake LLM: {row.run.probe.requests}")
        rows.append(row)
    if "e" not in a.skip:
        rows += _scale(a, bench)
    if "f" not in a.skip:
        rows += _replay_stream(a, bench)
    if "g" not in a.skip:
        rows += _journals(a, bench)
    return rows


def _journals(a: argparse.Namespace, bench: Bench) -> list[Row]:
    """(g) no journal, SQLite, Kafka at L and C, then the same events answered from Kafka."""
    from streaming_agents.testing.kafka import LocalKafka

    c, lat = a.journal_capacity, a.latency_ms
    sqlite = str(bench.work / "journal" / "g.sqlite")
    kafka = LocalKafka(bench.work / "kafka")
    kafka.start()
    try:
        topic = f"kafka://{kafka.bootstrap}/bench-journal-{time.time_ns()}?scope=bench"
        rows = [
            _operator_row(bench, a, f"g run_agent, no journal, C={c}", c, lat),
            _operator_row(bench, a, f"g run_agent, SQLite journal, C={c}", c, lat, journal=sqlite),
            _operator_row(bench, a, f"g run_agent, Kafka journal, C={c}", c, lat, journal=topic),
        ]
        again = _operator_row(
            bench, a, "g same events again: journal hits read from Kafka", c, lat, journal=topic
        )
    finally:
        kafka.stop()
    if again.run.probe.requests != 0 or bench.fake.stats()["requests_total"] != 0:
        raise RuntimeError(f"the Kafka journal re-run reached the fake LLM: {again.run.probe}")
    return [*rows, again]


def _replay_stream(a: argparse.Namespace, bench: Bench) -> list[Row]:
    """(f) one bounded run, before (no back-pressure: the old end-of-input drain) and after."""
    rows = []
    c = a.capacities[0]
    variants = {
        "before": ("no back-pressure, aligned checkpoints", {"backlog_per_capacity": 0}),
        "after": ("back-pressure, unaligned checkpoints", {"unaligned": True}),
    }
    for name in a.stream_variants:
        how, extra = variants[name]
        every = a.stream_checkpoint_ms / 1000
        label = f"f bounded run, {name}: {how} every {every:g} s"
        rows.append(
            _operator_row(
                bench,
                a,
                label,
                c,
                a.latency_ms,
                checkpoint_interval_ms=a.stream_checkpoint_ms,
                rest=True,
                **extra,
            )
        )
    return rows


def _scale(a: argparse.Namespace, bench: Bench) -> list[Row]:
    rows = []
    c = a.capacities[0]
    small = min(1000, a.scale_keys)
    # the 1,000-key run gets as many events as the big one (at least 10 per key)
    small_per_key = max(10, a.scale_keys * a.scale_per_key // small)
    for keys, per_key in ((small, small_per_key), (a.scale_keys, a.scale_per_key)):
        ckpt, rocks = bench.work / f"ckpt-{keys}", bench.work / f"rocksdb-{keys}"
        how = "LLM L=0" if a.scale_llm_calls else "journal hits"
        label = f"e RocksDB, {keys:,} keys x {a.scale_turns} turns, {how}"
        row = _operator_row(
            bench,
            a,
            label,
            c,
            0.0,
            n_keys=keys,
            per_key=per_key,
            prefill=a.scale_turns,
            max_turns=a.scale_turns,
            turn_chars=a.turn_chars,
            backend="rocksdb",
            checkpoint_dir=str(ckpt),
            rocksdb_dir=str(rocks),
            checkpoint_interval_ms=a.checkpoint_interval_ms,
            agent=f"scale{keys}",
            journal=None if a.scale_llm_calls else str(bench.work / f"journal-{keys}.sqlite"),
            fill_journal=not a.scale_llm_calls,
            rest=True,
            watch={"rocksdb": str(rocks), "checkpoints": str(ckpt)},
        )
        if not a.scale_llm_calls and row.run.probe.requests:
            raise RuntimeError(f"{label}: {row.run.probe.requests} calls despite the journal")
        row.extra["checkpoint_dir_bytes"] = dir_size(ckpt)
        rows.append(row)
        shutil.rmtree(rocks, ignore_errors=True)
    return rows


def code_version() -> str:
    """HEAD and which runtime files differ from it (others edit them concurrently)."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "streaming_agents"], capture_output=True, text=True
    )
    files = [line[3:] for line in dirty.stdout.splitlines()]
    suffix = (
        f" + uncommitted changes in {len(files)} files under streaming_agents/" if files else ""
    )
    return head.stdout.strip() + suffix


def machine_facts() -> dict[str, str]:
    load = os.getloadavg()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "load": " ".join(f"{x:.2f}" for x in load),
        "code": code_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault(KEY_ENV, "sk-fake-bench-key")  # before any JVM starts
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["SA_BENCH_MODEL"] = args.model  # read by scripts.bench_jobs in each child
    command = "python -m scripts.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    before = machine_facts()
    started = time.time()
    work = Path(args.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with FakeLLM() as fake:
        rows = measure(args, Bench(fake, work))
    shutil.rmtree(work / "journal", ignore_errors=True)
    after = machine_facts()
    table, details = render(rows, args)
    goal_table = goals(rows)
    print(table)
    print(details)
    print(goal_table)
    section = journal_section(rows, before, after)
    if section:
        print(section)
    if not args.no_write and set(args.skip) == set(SECTIONS) - {"g"}:
        splice_section(Path(args.out), section)  # only (g) ran: replace only its block
        print(f"wrote (g) into {args.out}")
    elif not args.no_write:
        write_doc(
            Path(args.out),
            command.strip(),
            before,
            after,
            time.time() - started,
            table,
            details,
            goal_table,
            section,
        )
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
