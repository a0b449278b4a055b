"""Tables and ``docs/benchmarks.md`` for ``scripts.bench``."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.bench_probe import ProbeResult

__all__ = ["Row", "Run", "goals", "journal_section", "render", "splice_section", "write_doc"]


@dataclass
class Run:
    """A child's own result (``RESULT`` line) and what the probe measured."""

    result: dict[str, Any]
    probe: ProbeResult


@dataclass
class Row:
    section: str
    label: str
    run: Run
    capacity: int
    latency_ms: float
    keys: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return int(self.run.result["n"])

    @property
    def by_outputs(self) -> bool:
        """No LLM request was made: throughput is timed by the collected outputs."""
        return self.run.probe.requests < 2

    @property
    def rate(self) -> float:
        if not self.by_outputs:
            return self.run.probe.rate
        r = self.run.result
        span = r.get("out_last", 0.0) - r.get("out_first", 0.0)
        return (self.events - 1) / span if span > 0 else 0.0

    @property
    def window(self) -> tuple[float, float]:
        """(start, end) unix times of the measured window."""
        p, r = self.run.probe, self.run.result
        if self.by_outputs:
            return r.get("out_first", 0.0), r.get("out_last", 0.0)
        return p.first_t, p.first_t + p.window_s

    @property
    def cpu_ms(self) -> float:
        """CPU ms per event of the measured process tree (JVM included) in the window."""
        p, r = self.run.probe, self.run.result
        cpu = p.cpu_s if not self.by_outputs else p.cpu_between(r["out_first"], r["out_last"])
        n = p.requests if not self.by_outputs else self.events
        return 1000.0 * cpu / n if n else 0.0

    @property
    def fake_ms(self) -> float:
        """The fake LLM server's CPU ms per request in the window."""
        p = self.run.probe
        return 1000 * p.fake_cpu_s / max(1, p.requests)

    @property
    def bound(self) -> float | None:
        """Little's law: at most min(C, keys) calls in flight, each taking L."""
        if self.latency_ms <= 0 or not self.keys:
            return None
        return min(self.capacity, self.keys) / (self.latency_ms / 1000.0)


def _f(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def _ceiling(rows: list[Row], row: Row) -> Row | None:
    return next(
        (
            r
            for r in rows
            if r.label.startswith("asyncio")
            and r.capacity == row.capacity
            and r.latency_ms == row.latency_ms
        ),
        None,
    )


def _baseline(rows: list[Row]) -> Row | None:
    """(c): the synchronous map, if it ran."""
    return next((r for r in rows if r.section == "c"), None)


def _ratio(row: Row, ceiling: Row | None) -> float | None:
    """el/s over min(Little bound, ceiling) for an operator row with a ceiling row."""
    if ceiling is None or row.by_outputs or not ceiling.rate:
        return None
    return row.rate / min(row.bound or ceiling.rate, ceiling.rate)


def goals(rows: list[Row]) -> str:
    """The issue's goals, checked against this run: a Markdown table."""
    baseline = _baseline(rows)
    lines = [
        "| goal | workload | measured | met |",
        "|---|---|---|---|",
    ]
    for row in (r for r in rows if r.section == "b"):
        ratio = _ratio(row, _ceiling(rows, row))
        if ratio is not None:
            lines.append(
                f"| ratio >= 0.8 at C={row.capacity} | {row.label} | {ratio:.2f} | "
                f"{'yes' if ratio >= 0.8 else 'no'} |"
            )
        if baseline is not None and baseline.rate:
            times = row.rate / baseline.rate
            lines.append(
                f"| >= 40x the synchronous map | {row.label} | {times:,.0f}x | "
                f"{'yes' if times >= 40 else 'no'} |"
            )
    kafka_ratio = _journal_ratio(rows, "Kafka journal")
    if kafka_ratio is not None:
        lines.append(
            f"| Kafka journal >= 0.9 of no journal | (g) at C={rows[-1].capacity} | "
            f"{kafka_ratio:.2f} | {'yes' if kafka_ratio >= 0.9 else 'no'} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def _journal_ratio(rows: list[Row], name: str) -> float | None:
    """(g): el/s of the ``name`` row over the no-journal row of the same run."""
    g = {r.label.split(", ")[1]: r for r in rows if r.section == "g" and ", " in r.label}
    plain, row = g.get("no journal"), g.get(name)
    if plain is None or row is None or not plain.rate:
        return None
    return row.rate / plain.rate


SECTION_G = ("<!-- bench section g: begin -->", "<!-- bench section g: end -->")


def journal_section(rows: list[Row], before: dict[str, str], after: dict[str, str]) -> str:
    """(g) as its own Markdown block: the journal backends side by side, and the re-run."""
    g = [r for r in rows if r.section == "g"]
    if not g:
        return ""
    lines = [
        SECTION_G[0],
        "## Journal backends (g)",
        "",
        f"`python -m scripts.bench --only g` (part of `make bench`); {before['date']}, "
        f"code {before['code']}; load average (1/5/15 min) {before['load']} at start, "
        f"{after['load']} at end (nproc {before['nproc']}). Rows of one run, in this order.",
        "",
        "| workload | C | L ms | events | el/s | vs no journal | CPU ms/event | LLM requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    plain = g[0]
    for row in g:
        rate = _f(row.rate, "{:,.1f}") + (" (outputs)" if row.by_outputs else "")
        vs = row.rate / plain.rate if plain.rate and not row.by_outputs else None
        lines.append(
            f"| {row.label} | {row.capacity} | {row.latency_ms:g} | {row.events:,} | {rate} | "
            f"{_f(vs, '{:.2f}')} | {row.cpu_ms:.2f} | {row.run.probe.requests:,} |"
        )
    lines.append("")
    for name in ("SQLite journal", "Kafka journal"):
        ratio = _journal_ratio(rows, name)
        if ratio is not None:
            goal = (
                f" (goal >= 0.9: {'met' if ratio >= 0.9 else 'not met'})" if "Kafka" in name else ""
            )
            lines.append(f"- {name} / no journal, el/s: {ratio:.2f}{goal}.")
    again = g[-1]
    r = again.run.result
    lines.append(
        f"- The same {again.events:,} events again with the Kafka journal: "
        f"{again.run.probe.requests} LLM requests (asserted 0); outputs from first to last in "
        f"{r.get('out_last', 0.0) - r.get('out_first', 0.0):.1f} s "
        f"({again.rate:,.0f} el/s), {r.get('wall_s', 0.0):.1f} s for the whole job "
        f"(mini-cluster start and the reads of the journal topic's 32 partitions included)."
    )
    lines.append(
        "- CPU ms/event is the figure that survives load: when the load average exceeds the "
        "cores, el/s mostly measures the CPU share each run got."
    )
    lines.append(SECTION_G[1])
    return "\n".join(lines)


def splice_section(path: Path, section: str) -> None:
    """Replace (g)'s block in ``path`` (or insert it before the method notes), keep the rest."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    begin, end = SECTION_G
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    elif "## How it is measured" in text:
        head, rest = text.split("## How it is measured", 1)
        text = head + section + "\n\n## How it is measured" + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def _cpu_budget(rows: list[Row], op: Row, plain: Row) -> str:
    """(d) at L=0: where a subtask's CPU goes, and the caps that follow, from this run's rows."""
    litellm_ms, fake_ms = plain.cpu_ms, op.fake_ms
    own_ms = op.cpu_ms - plain.cpu_ms
    cores = os.cpu_count() or 1
    one_gil = 1000 / (litellm_ms + max(0.0, own_ms))
    machine = cores * 1000 / (litellm_ms + max(0.0, own_ms) + fake_ms)
    baseline = _baseline(rows)
    times = f" = {machine / baseline.rate:,.0f}x the synchronous map" if baseline else ""
    return (
        f"- (d) L=0: operator {op.cpu_ms:.2f} CPU ms/event (JVM + embedded Python, "
        f"{op.rate:,.0f} el/s) vs plain litellm {litellm_ms:.2f} CPU ms/call "
        f"({plain.rate:,.0f} calls/s): {own_ms:+.2f} ms per event is the operator's own cost. "
        f"Fake LLM server: {fake_ms:.2f} ms/request.\n"
        f"- Where the CPU goes: in process, litellm and the operator share one interpreter "
        f"lock: about {one_gil:,.0f} el/s per subtask at most. With call workers litellm runs "
        f"on every core: the {cores} cores, shared with the fake LLM, cap a subtask near "
        f"{machine:,.0f} el/s{times}. Journal hits skip litellm entirely (d, second run)."
    )


def _stream_note(row: Row) -> str:
    """(f): when outputs came (from the first LLM request) and how long checkpoints took."""
    p, r = row.run.probe, row.run.result
    t0 = p.first_t
    done = [c["duration_ms"] / 1000 for c in p.checkpoints]
    spread = f"median {sorted(done)[len(done) // 2]:.1f} s, max {max(done):.1f} s" if done else "-"
    slow = sorted(p.checkpoints, key=lambda c: -c["duration_ms"])[:3]
    slowest = ", ".join(
        f"{c['duration_ms'] / 1000:.1f} s triggered at {c['trigger_ms'] / 1000 - t0:.1f} s"
        for c in slow
    )
    during = sum(1 for c in p.checkpoints if c["trigger_ms"] / 1000 < r["out_last"])
    open_s = [(c["seen_ms"] - c["trigger_ms"]) / 1000 for c in p.unfinished_checkpoints]
    unfinished = (
        f"; {len(open_s)} never completed (open at least {max(open_s):.1f} s when last seen)"
        if open_s
        else ""
    )
    return (
        f"- (f) {row.label}: {row.events:,} outputs; from the first LLM request, first output "
        f"after {r['out_first'] - t0:.1f} s, half the outputs by {r['out_median'] - t0:.1f} s, "
        f"last at {r['out_last'] - t0:.1f} s (last request at {p.window_s:.1f} s); "
        f"{len(done)} checkpoints completed ({during} triggered before the last output), "
        f"end-to-end {spread} (longest: {slowest}){unfinished}."
    )


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def render(rows: list[Row], args: argparse.Namespace) -> tuple[str, str]:
    """(the main table, the detail notes) as Markdown."""
    head = (
        "| | workload | C | L ms | events | el/s | Little bound | ceiling | ratio | "
        "CPU ms/event | events per CPU-s | max in flight |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    notes: list[str] = []
    baseline = _baseline(rows)
    for row in rows:
        is_op = row.section in "bd" and not row.label.startswith("asyncio")
        ceiling = _ceiling(rows, row) if is_op else None
        ratio = _ratio(row, ceiling)
        rate = _f(row.rate, "{:,.1f}") + (" (outputs)" if row.by_outputs else "")
        lines.append(
            f"| {row.section} | {row.label} | {row.capacity} | {row.latency_ms:g} | "
            f"{row.events:,} | {rate} | {_f(row.bound)} | "
            f"{_f(ceiling.rate if ceiling else None)} | {_f(ratio, '{:.2f}')} | "
            f"{row.cpu_ms:.2f} | {_f(1000 / row.cpu_ms if row.cpu_ms else None)} | "
            f"{row.run.probe.max_concurrent} |"
        )
    for row in rows:
        if row.section == "b" and baseline is not None and baseline.rate:
            notes.append(
                f"- (b)/(c): {row.label}: {row.rate / baseline.rate:,.0f}x the synchronous map "
                f"({row.rate:,.1f} vs {baseline.rate:,.2f} el/s)."
            )
    ops = [r for r in rows if r.section == "d" and r.label.startswith("run_agent, Null")]
    plain = [r for r in rows if r.section == "d" and r.label.startswith("asyncio")]
    if ops and plain:
        notes.append(_cpu_budget(rows, ops[0], plain[0]))
    replay = next((r for r in rows if r.section == "d" and "journal hits" in r.label), None)
    if replay is not None:
        notes.append(
            f"- (d) journal replay: {replay.run.probe.requests} requests reached the fake LLM "
            f"(asserted 0); {replay.events:,} events at {replay.rate:,.0f} el/s, "
            f"{replay.cpu_ms:.2f} CPU ms/event (timed from first to last emitted output)."
        )
    scale = [r for r in rows if r.section == "e"]
    for row in scale:
        p = row.run.probe
        cps = p.checkpoints
        secs = sorted(c["duration_ms"] / 1000 for c in cps)
        durations = (
            f"median {secs[len(secs) // 2]:.1f}, max {secs[-1]:.1f}" if secs else "none seen"
        )
        last = max(cps, key=lambda c: c["state_size"]) if cps else None
        notes.append(
            f"- (e) {row.label}: {row.events:,} events at {row.rate:,.1f} el/s; peak RocksDB "
            f"dir {_mb(p.peak_dir_bytes.get('rocksdb', 0))}; largest completed checkpoint: full "
            f"state {_mb(last['state_size']) if last else '-'}, incremental "
            f"{_mb(last['checkpointed_size']) if last else '-'}; checkpoint dir peak "
            f"{_mb(p.peak_dir_bytes.get('checkpoints', 0))}, at end "
            f"{_mb(row.extra.get('checkpoint_dir_bytes', 0))}; "
            f"{len(cps)} checkpoints completed (seen by REST), end-to-end duration s: {durations}."
        )
    if len(scale) == 2 and scale[0].rate:
        notes.append(
            f"- (e) throughput {scale[1].keys:,} keys / {scale[0].keys:,} keys: "
            f"{scale[1].rate / scale[0].rate:.2f}."
        )
    notes += [_stream_note(row) for row in rows if row.section == "f"]
    for row in rows:
        t0, t1 = row.window
        top = row.run.probe.top_threads(t0, t1)
        if top and row.section != "c" and t1 - t0 >= 5:
            threads = ", ".join(f"{n} {c:.2f}" for n, c in top)
            notes.append(f"- busiest threads (cores), {row.section} {row.label}: {threads}")
    return "\n".join(lines), "\n".join(notes)


METHOD = """\
## How it is measured

- One fake LLM subprocess (`streaming_agents.testing.fake_llm`, fixed latency L) serves every
  run; each workload runs in its own child process (`scripts/bench_jobs.py`).
- **el/s** = LLM requests seen by the fake, from the first to the last one, divided by that
  time. The fake keeps no per-request timestamps, so the driver polls `/_admin/stats` every
  20 ms and times the first and last change of `requests_total` (job start-up and the drain
  after the last request are excluded). Rows marked *(outputs)* made no LLM request: they are
  timed from the first to the last output the operator emitted (a map chained to it stamps
  each output; the collecting client would see them in bursts, at checkpoints).
- **ceiling** = (a) at the same C and L: plain asyncio + `litellm.acompletion`, the same
  1,000 conversations (one chain of turns per key, memory sent with each call).
  **ratio** = el/s / min(Little bound, ceiling).
- **CPU ms/event**: CPU time (user + sys, `/proc`) during the window divided by requests (or
  outputs): of the ceiling's process; for Flink runs of the processes the client started
  (the mini-cluster JVM, which runs the operator's Python embedded in thread mode, plus
  (c)'s Python worker), not of the client that collects results. The fake LLM's CPU is not
  included. **events per CPU-s** is its inverse.
  When the load average exceeds the 2 cores, el/s measures the CPU share each process got
  from the scheduler as much as the code; CPU per event is the figure that survives the load.
- **busiest threads**: CPU of each thread (`/proc/<pid>/task`, sampled every 0.5 s) over the
  window, in cores. Python threads started inside the JVM inherit the name of the thread that
  started them, so the operator's event-loop thread is also called `agent:<name>@<version>`.
- (c) runs a plain `map` in PyFlink's default process mode, no key_by, one blocking call each.
- (d) journal: the first run fills a SqliteJournal (in a temp dir), the second run of the same
  events is answered entirely from it; the fake LLM must see zero requests (asserted).
- (e) A key's first event makes its reduce prefill memory with 20 synthetic turns (random hex
  seeded by the key, 200 chars a turn; hex compresses at most 2x): 100,000 keys hold
  20 turns each after one event per key (2,000,000 real turns would take hours here). The
  scale agent's step sends only the new prompt and its calls are answered by a journal
  pre-filled before the job starts (untimed): L is 0 in the strictest sense and litellm's CPU
  is out of the way, so what is measured is the runtime plus state; the fake LLM must see
  zero requests (asserted). `--scale-llm-calls` makes real calls at L=0 instead (several
  times slower). The 1,000-key comparison uses the same agent, backend and event count
  (100 events per key). RocksDB with incremental checkpoints every 10 s; state and
  checkpoint sizes and durations from Flink REST `/jobs/<id>/checkpoints` (polled every
  0.5 s, so the final checkpoint can be missed) and from the local RocksDB and checkpoint
  directories (peak; Flink deletes the checkpoints when a bounded job finishes).
- (f) "replays that stream": the operator workload (1,000 keys x 10 events, L and the first
  C above) on a bounded source with checkpoints every 2 s (`--stream-checkpoint-ms`), run
  twice in one invocation: *before* with the operator's back-pressure switched off
  (`BACKLOG_PER_CAPACITY = 0`, which is the operator as it was before it: the source is read
  at once and the end-of-input timers drain every key on the task thread) and aligned
  checkpoints, *after* as replays run: the default back-pressure (at most 4 x C events
  accepted but unprocessed) and unaligned checkpoints (the barrier overtakes the records
  queued in network buffers; with aligned ones it waits behind them, up to the whole
  range of small records). Output times are stamped where the
  operator emits them; checkpoints from Flink REST (an unfinished one is reported with the
  time it had been open when last polled). `python -m scripts.bench --only f --no-write`
  runs just this section.
- (g) journal backends: the operator workload (1,000 keys x 10 events, L, C=500 by default,
  `--journal-capacity`) with no journal, a SQLite journal (a temp file) and the Kafka journal
  (`kafka://<broker>/<topic>?scope=bench`, a single local KRaft broker this run starts: acks=all
  on one replica), one after the other in one run; then the same events again with the same
  Kafka journal: every call is answered from the topic (the fake LLM must see zero requests,
  asserted). `python -m scripts.bench --only g` replaces only this block of the doc.
- **call workers**: rows with "N call workers" run `run_agent(..., llm_processes=N)`: the litellm
  calls go to N worker processes (`streaming_agents/llm/call_pool.py`), children of the JVM, so
  their CPU is in the measured tree. In process, litellm shares the embedded interpreter (one
  GIL) with the operator: the event-loop thread near one core is the limit. With workers the
  operator can beat the single-process ceiling (a), so ratios above 1 are possible.
- Figures move from run to run on this shared VM (litellm measured 4 ms of CPU per call on
  one day, 7-9 ms on another): compare rows of one run, and see the load average.
"""


def write_doc(
    path: Path,
    command: str,
    before: dict[str, str],
    after: dict[str, str],
    elapsed_s: float,
    table: str,
    details: str,
    goal_table: str = "",
    sections: str = "",
) -> None:
    facts = (
        f"- command: `make bench` (= `{command}`, `LITELLM_LOCAL_MODEL_COST_MAP=True`)\n"
        f"- date: {before['date']}; total time {elapsed_s / 60:.1f} min\n"
        f"- machine: nproc {before['nproc']}, {before['cpu']}\n"
        f"- model string: `{os.environ.get('SA_BENCH_MODEL', '?')}` (served by the fake LLM)\n"
        f"- code: {before['code']}\n"
        f"- load average (1/5/15 min): {before['load']} at start, {after['load']} at end\n"
    )
    text = (
        "# Benchmarks\n\nGenerated by `make bench` (`scripts/bench.py`); numbers from one run.\n\n"
        f"{facts}\n## Results\n\n{table}\n\n{details}\n\n"
        + (
            f"## Goals\n\nFrom the rows above (issue: the agent operator).\n\n{goal_table}\n\n"
            if goal_table
            else ""
        )
        + (f"{sections}\n\n" if sections else "")
        + METHOD
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
