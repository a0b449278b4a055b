"""Benchmark measurements taken from outside the measured process.

:class:`Probe` runs in the bench driver while a job (or the plain-litellm
ceiling) runs in a child process.  It polls the fake LLM's ``/_admin/stats``
(the fake records no per-request timestamps, so the first and last request
are timed by polling ``requests_total``), samples the CPU time of the child's
process tree and of each of its threads from ``/proc``, and, when the child
runs a Flink mini-cluster with a known REST port, the job's checkpoint
statistics.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming_agents.testing.fake_llm import FakeLLM

__all__ = ["Probe", "ProbeResult", "dir_size", "tree_pids"]

_TICK = os.sysconf("SC_CLK_TCK")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _stat_fields(text: str) -> tuple[str, list[str]]:
    """(comm, fields after comm) of a /proc stat line."""
    if not text:
        return "", []
    lpar, rpar = text.find("("), text.rfind(")")
    return text[lpar + 1 : rpar], text[rpar + 2 :].split()


def _cpu_s(fields: list[str]) -> float:
    # utime and stime are fields 14 and 15 of stat; after comm they are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _TICK if len(fields) > 12 else 0.0


def tree_pids(root: int) -> list[int]:
    """``root`` first, then all its descendants (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            _, fields = _stat_fields(_read(f"/proc/{entry}/stat"))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _threads(pids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    """{(pid, tid): (thread name, cpu seconds)} for every thread of ``pids``."""
    out: dict[tuple[int, int], tuple[str, float]] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                comm, fields = _stat_fields(_read(f"/proc/{pid}/task/{tid}/stat"))
                if fields:
                    out[(pid, int(tid))] = (comm, _cpu_s(fields))
    return out


def dir_size(path: str | Path) -> int:
    """Bytes in all files under ``path`` (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


Threads = dict[str, float]  # "name[tid]" -> CPU seconds


@dataclass
class ProbeResult:
    """What the probe saw; the window is from the first to the last LLM request."""

    requests: int = 0
    window_s: float = 0.0
    first_t: float = 0.0  # unix time of the first request seen
    cpu_s: float = 0.0  # CPU of the child's process tree during the window
    fake_cpu_s: float = 0.0  # CPU of the fake LLM server during the window
    max_concurrent: int = 0
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # completed
    unfinished_checkpoints: list[dict[str, Any]] = field(default_factory=list)  # last seen
    peak_dir_bytes: dict[str, int] = field(default_factory=dict)
    cpu_series: list[tuple[float, float]] = field(default_factory=list)  # (unix time, cpu s)
    thread_series: list[tuple[float, Threads]] = field(default_factory=list)
    loop_tids: set[int] = field(default_factory=set)  # operator threads seen in epoll_wait

    @property
    def rate(self) -> float:
        """Requests per second from the first to the last request (n-1 intervals)."""
        return (self.requests - 1) / self.window_s if self.requests > 1 and self.window_s else 0.0

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds of the child's tree between two unix times (from 0.5 s samples)."""

        def at(t: float) -> float:
            series = self.cpu_series
            if not series:
                return 0.0
            for (ta, ca), (tb, cb) in itertools.pairwise(series):
                if ta <= t <= tb:
                    return ca + (cb - ca) * ((t - ta) / (tb - ta) if tb > ta else 0.0)
            return series[0][1] if t < series[0][0] else series[-1][1]

        return at(t1) - at(t0)

    def top_threads(self, t0: float, t1: float, n: int = 6) -> list[tuple[str, float]]:
        """The busiest threads between two unix times, in cores (CPU s per second)."""
        # samples inside the window only: after it the job's threads may already be gone
        inside = [snap for snap in self.thread_series if t0 <= snap[0] <= t1]
        if len(inside) < 2:
            return []
        (ta, before), (tb, after) = inside[0], inside[-1]
        cores = {k: (v - before.get(k, 0.0)) / (tb - ta) for k, v in after.items()}
        top = sorted(cores.items(), key=lambda kv: -kv[1])[:n]
        loops = {f"[{tid}]" for tid in self.loop_tids}
        return [
            (k.replace("]", " asyncio]") if k[k.rfind("[") :] in loops else k, round(v, 2))
            for k, v in top
            if v >= 0.01
        ]


class Probe:
    """Polls the fake LLM, /proc and optionally Flink REST while a child process runs."""

    def __init__(
        self,
        fake: FakeLLM,
        child_pid: int,
        *,
        interval_s: float = 0.02,
        rest_port: int | None = None,
        watch_dirs: dict[str, str] | None = None,
    ) -> None:
        self._fake = fake
        self._child = child_pid
        self._fake_pid = fake._proc.pid if fake._proc is not None else None
        self._interval = interval_s
        self._rest = rest_port
        self._dirs = watch_dirs or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-probe", daemon=True)
        self.result = ProbeResult()
        self._checkpoints: dict[int, dict[str, Any]] = {}
        self._pids: list[int] = [child_pid]
        self._loops = self.result.loop_tids

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _proc_cpu(self) -> float:
        # A Flink child is the client (collecting results) plus the JVM that runs the job:
        # count the job's processes only. A plain child (the ceiling) is counted itself.
        pids = self._pids[1:] or self._pids
        return sum(_cpu_s(_stat_fields(_read(f"/proc/{pid}/stat"))[1]) for pid in pids)

    def _snapshot(self) -> tuple[float, float, float]:
        fake = 0.0
        if self._fake_pid is not None:
            fake = _cpu_s(_stat_fields(_read(f"/proc/{self._fake_pid}/stat"))[1])
        return time.time(), self._proc_cpu(), fake

    def _loop(self) -> None:
        first: tuple[float, float, float] | None = None
        last = first
        seen = 0
        next_slow = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_slow:
                next_slow = time.monotonic() + 0.5
                self._poll_slow()
            with contextlib.suppress(Exception):
                total = int(self._fake.stats()["requests_total"])
                if total > seen:
                    snap = self._snapshot()
                    first = first or snap
                    last, seen = snap, total
            self._stop.wait(self._interval)
        res = self.result
        with contextlib.suppress(Exception):
            res.max_concurrent = int(self._fake.stats()["max_concurrent"])
        res.requests = seen
        res.checkpoints = [
            cp for _, cp in sorted(self._checkpoints.items()) if cp["status"] == "COMPLETED"
        ]
        res.unfinished_checkpoints = [
            cp for _, cp in sorted(self._checkpoints.items()) if cp["status"] != "COMPLETED"
        ]
        if first is not None and last is not None:
            res.first_t = first[0]
            res.window_s = last[0] - first[0]
            res.cpu_s = last[1] - first[1]
            res.fake_cpu_s = last[2] - first[2]

    def _poll_slow(self) -> None:
        self._pids = tree_pids(self._child)
        now = time.time()
        self.result.cpu_series.append((now, self._proc_cpu()))
        threads = _threads(self._pids)
        for (pid, tid), (name, _) in threads.items():
            # an asyncio loop idles in epoll_wait (x86-64 syscalls 232 / 281): that tells the
            # operator's event-loop thread from the task thread, which share one name
            if name.startswith("agent:") and tid not in self._loops:
                call = _read(f"/proc/{pid}/task/{tid}/syscall").split(" ", 1)[0]
                if call in ("232", "281"):
                    self._loops.add(tid)
        labels = {f"{name}[{tid}]": cpu for (_, tid), (name, cpu) in threads.items()}
        self.result.thread_series.append((now, labels))
        for name, path in self._dirs.items():
            size = dir_size(path)
            if size > self.result.peak_dir_bytes.get(name, 0):
                self.result.peak_dir_bytes[name] = size
        if self._rest is None:
            return
        root = f"http://127.0.0.1:{self._rest}"
        with contextlib.suppress(Exception):
            jobs = _get_json(f"{root}/jobs/overview")["jobs"]
            for job in jobs:
                history = _get_json(f"{root}/jobs/{job['jid']}/checkpoints").get("history", [])
                for cp in history:
                    # in progress: duration so far (a checkpoint still open when the job ends
                    # keeps its last polled duration); ``status`` tells them apart
                    self._checkpoints[int(cp["id"])] = {
                        "id": cp["id"],
                        "status": cp.get("status", "?"),
                        "trigger_ms": cp.get("trigger_timestamp", 0),
                        "seen_ms": now * 1000.0,
                        "state_size": cp.get("state_size", 0),
                        "checkpointed_size": cp.get("checkpointed_size", 0),
                        "duration_ms": cp.get("end_to_end_duration", 0),
                    }


def _get_json(url: str) -> Any:
    with _OPENER.open(url, timeout=2) as resp:
        return json.loads(resp.read())
