"""Two "hosts" and one TaskManager kill: does the journal hold across machines?

``python -m streaming_agents.chaos.hosts [--journal kafka|sqlite|both]``

A :class:`HostsCluster` runs one JobManager and TaskManagers of one slot
each, every TaskManager in its own mount namespace (``unshare -m``, needs
root) with a private tmpfs over ``<run>/host``: they share the machine but
not that folder, as two hosts would not.  The chaos job runs at parallelism 2
(one subtask per "host") with either the Kafka journal or a SQLite journal
at ``<run>/host/journal.sqlite`` (so a file per host).  Late in a checkpoint
interval (``kill_after_s`` after a checkpoint completed) one TaskManager is
killed with ``kill -9`` and a new one (a new host, an empty disk) started.
The run prints lost/duplicated outputs, per-key order, and the two figures
that matter for the journal: LLM calls answered before the kill and paid
again (``requests_total - requests_distinct``; the fake LLM injects no
errors here, so no request repeats for another reason) against the calls in
flight at the kill (the most that may be paid again).

It reuses the chaos harness (:mod:`streaming_agents.chaos.harness`): its
traffic, drain and verdict; only the cluster layout, the journal and the
fault differ.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streaming_agents.chaos.cluster import ChaosCluster
from streaming_agents.chaos.harness import API_KEY_ENV, JOB, _Run
from streaming_agents.chaos.plan import ChaosPlan
from streaming_agents.chaos.report import verdict
from streaming_agents.errors import InfrastructureError
from streaming_agents.runtime.environment import repo_root
from streaming_agents.testing.cluster import flink_home

__all__ = ["HostsCluster", "HostsFigures", "run_hosts"]


class HostsCluster(ChaosCluster):
    """A chaos cluster whose one-slot TaskManagers each see their own ``host_dir``."""

    def __init__(self, run_dir: Path, host_dir: Path, extra_env: dict[str, str]) -> None:
        super().__init__(run_dir, extra_env)
        self.host_dir = host_dir

    def render_conf(self) -> Path:
        conf_dir = super().render_conf()
        path = conf_dir / "config.yaml"
        text, count = re.subn(r"(numberOfTaskSlots:\s*)\d+", r"\g<1>1", path.read_text())
        if count != 1:
            raise InfrastructureError("flink-conf/config.yaml: expected one numberOfTaskSlots")
        path.write_text(text)
        return conf_dir

    def up(self, timeout_s: float = 90.0) -> None:
        """The JobManager, then two TaskManagers on their own "hosts"."""
        self.render_conf()
        self.host_dir.mkdir(parents=True, exist_ok=True)
        self._script("jobmanager.sh", "start")
        deadline = time.monotonic() + timeout_s
        while not self.is_up():
            if time.monotonic() > deadline:
                raise InfrastructureError("JobManager not up:\n" + self.log_tail("standalone"))
            time.sleep(0.5)
        for _ in range(2):
            self.start_taskmanager()

    def start_taskmanager(self, timeout_s: float = 60.0) -> None:
        """A TaskManager in a new mount namespace with an empty private ``host_dir``."""
        before = {tm["id"] for tm in self.taskmanagers()}
        script = (
            f"mount -t tmpfs -o mode=0700 tmpfs '{self.host_dir}' && "
            f"exec '{flink_home() / 'bin' / 'taskmanager.sh'}' start"
        )
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            env=self.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise InfrastructureError(f"TaskManager in a namespace failed: {done.stderr[-2000:]}")
        deadline = time.monotonic() + timeout_s
        while not {tm["id"] for tm in self.taskmanagers()} - before:
            if time.monotonic() > deadline:
                raise InfrastructureError("new TaskManager not registered")
            time.sleep(0.3)

    def kill_one_taskmanager(self) -> int:
        """``kill -9`` the oldest live TaskManager; returns its pid."""
        pids = self._pids("taskexecutor")
        if not pids:
            raise InfrastructureError("no TaskManager to kill")
        victim = min(pids)
        subprocess.run(["kill", "-9", str(victim)], check=True)
        while Path(f"/proc/{victim}").exists():
            time.sleep(0.05)
        return victim


@dataclass
class HostsFigures:
    """What one run measured."""

    journal: str
    inputs: int
    outputs: int
    lost: int
    duplicated: int
    order_violations: int
    requests_total: int
    requests_distinct: int
    in_flight_at_kill: int
    key_leaks: int  # files of the run (logs, checkpoints, journal, broker data) with the API key
    errors: list[str]

    @property
    def paid_again(self) -> int:
        return self.requests_total - self.requests_distinct


class _HostsRun(_Run):
    def __init__(self, plan: ChaosPlan, journal: str, kill_after_s: float) -> None:
        super().__init__(plan, lambda line: print(line, flush=True))
        self.journal_kind, self.kill_after_s = journal, kill_after_s
        self.host_dir = plan.run_dir / "host"
        self.hosts = HostsCluster(
            plan.run_dir / "flink", self.host_dir, extra_env={API_KEY_ENV: self.api_key}
        )
        self.cluster = self.hosts
        self.in_flight_at_kill = 0

    def submit(self, checkpoint: Path | None = None) -> None:
        uri = (
            f"kafka://{self.kafka.bootstrap}/journal-{self.tag}?partitions=8"
            if self.journal_kind == "kafka"
            else f"sqlite://{self.host_dir}/journal.sqlite"
        )
        args = [
            *("--bootstrap", self.kafka.bootstrap, "--in", self.topics["in"]),
            *("--out", self.topics["out"], "--dlq", self.topics["dlq"]),
            *("--api-base", self.llm.base_url, "--api-key-env", API_KEY_ENV),
            *("--journal", uri, "--txn-prefix", f"hosts-{self.tag}"),
            *("--group-id", f"hosts-{self.tag}", "--checkpoint-ms", str(self.plan.checkpoint_ms)),
            *("--parallelism", "2", "--timeout-s", str(self.plan.model_timeout_s)),
        ]
        self.job_id = self.cluster.submit_py(JOB, args)
        self.cluster.wait_job(self.job_id, {"RUNNING"}, timeout_s=120)

    def _last_checkpoint_ms(self) -> int | None:
        completed = self.cluster.rest(f"/jobs/{self.job_id}/checkpoints")["latest"]["completed"]
        return None if not completed else int(completed["latest_ack_timestamp"])

    def kill_late_in_interval(self) -> None:
        """Kill one TaskManager ``kill_after_s`` after a checkpoint, before the next one."""
        deadline = time.monotonic() + 10 * self.plan.checkpoint_ms / 1000 + 60
        seen = self._last_checkpoint_ms()
        while True:
            if time.monotonic() > deadline:
                raise InfrastructureError("no checkpoint interval to kill in")
            ack = self._last_checkpoint_ms()
            if ack is None or ack == seen:
                time.sleep(0.2)
                continue
            time.sleep(max(0.0, ack / 1000 + self.kill_after_s - time.time()))
            if self._last_checkpoint_ms() == ack:  # no newer checkpoint meanwhile
                break
            seen = ack
        self.in_flight_at_kill = int(self.llm.stats()["in_flight"])
        pid = self.hosts.kill_one_taskmanager()
        self.log(f"[{self.now():6.1f}s] kill -9 TaskManager {pid} "
                 f"{time.time() - ack / 1000:.1f} s after a checkpoint; "
                 f"{self.in_flight_at_kill} calls in flight")  # fmt: skip
        self.cluster.start_taskmanager()
        self.log(f"[{self.now():6.1f}s] a new TaskManager (new host, empty disk) started")


def run_hosts(journal: str, run_dir: Path, *, checkpoint_ms: int = 20_000,
              kill_after_s: float = 18.0, rate: float = 10.0) -> HostsFigures:  # fmt: skip
    """One run; never raises for a failed guarantee (see ``errors``)."""
    plan = ChaosPlan(
        run_dir=run_dir, rate=rate, faults=(), checkpoint_ms=checkpoint_ms, rate_429=0.0,
        rate_500=0.0, rate_timeout=0.0, warmup_s=3.0, tail_s=15.0, linger_s=5.0,
    )  # fmt: skip
    run = _HostsRun(plan, journal, kill_after_s)
    try:
        run.start()
        run.kill_late_in_interval()
        run.drain()
    except Exception as exc:  # noqa: BLE001 - reported with what was seen
        run.result.errors.append(f"{type(exc).__name__}: {str(exc)[:500]}")
        run.result.llm = run.llm.stats()
    finally:
        run.close()
    result = run.result
    found = verdict(
        result.inputs, result.outputs, len(result.dead_letters), result.errors, result.leaks
    )
    by_name = {check.name: int(check.value) for check in found.checks}
    llm: dict[str, Any] = result.llm
    return HostsFigures(
        journal=journal, inputs=len(result.inputs), outputs=len(result.outputs),
        lost=by_name["every input has an output (lost)"], duplicated=by_name["duplicates"],
        order_violations=by_name["per-key order violations"],
        requests_total=int(llm.get("requests_total", 0)),
        requests_distinct=int(llm.get("requests_distinct", 0)),
        in_flight_at_kill=run.in_flight_at_kill, key_leaks=len(result.leaks),
        errors=list(result.errors),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming_agents.chaos.hosts")
    parser.add_argument("--journal", choices=("kafka", "sqlite", "both"), default="both")
    parser.add_argument("--checkpoint-ms", type=int, default=20_000)
    parser.add_argument("--kill-after-s", type=float, default=18.0)
    parser.add_argument("--rate", type=float, default=10.0)
    args = parser.parse_args(argv)
    kinds = ("kafka", "sqlite") if args.journal == "both" else (args.journal,)
    rows = []
    for kind in kinds:
        run_dir = repo_root() / ".run" / f"hosts-{kind}"
        rows.append(run_hosts(kind, run_dir, checkpoint_ms=args.checkpoint_ms,
                              kill_after_s=args.kill_after_s, rate=args.rate))  # fmt: skip
    print("\n| journal | inputs / outputs | lost / duplicated / order | LLM requests total / "
          "distinct | answered calls paid again | calls in flight at the kill |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for f in rows:
        print(f"| {f.journal} | {f.inputs} / {f.outputs} | {f.lost} / {f.duplicated} / "
              f"{f.order_violations} | {f.requests_total} / {f.requests_distinct} | "
              f"{f.paid_again} | {f.in_flight_at_kill} |")  # fmt: skip
        print(f"  {f.journal}: files holding the API key: {f.key_leaks}")
        for error in f.errors:
            print(f"  {f.journal}: {error}")
    kafka = [f for f in rows if f.journal == "kafka"]
    ok = all(not f.errors and f.lost == f.duplicated == f.key_leaks == 0 for f in rows) and all(
        f.paid_again <= f.in_flight_at_kill for f in kafka
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
