"""`streaming-agents demo` end to end: each claim decided once by its rule, nothing left over.

The demo runs in its own session (``start_new_session``), so every process it
starts, except the Kafka broker (which detaches into a session of its own and
whose pid the demo prints), can be found by session id afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generate_claims(n: int, seed: int) -> list[Any]:
    """``jobs/claims_triage/sample_data.generate_claims``, loaded by path: on the test
    ``sys.path`` the name ``jobs`` is ``tests/jobs``."""
    path = ROOT / "jobs" / "claims_triage" / "sample_data.py"
    spec = importlib.util.spec_from_file_location("claims_triage_sample_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    records: list[Any] = module.generate_claims(n, seed)
    return records


DEMO = [sys.executable, "-m", "streaming_agents.cli.main", "demo"]
DECISION = re.compile(
    r"^\s+(CLM-\d{4})\s+(POL-\d+)\s+(auto_approve|human_review|request_more_info)\s+"
    r"fraud=(\d\.\d\d)\s"
)
SUMMARY = re.compile(
    r"^summary: (\d+) claims -> auto_approve=(\d+) human_review=(\d+) "
    r"request_more_info=(\d+) dead_lettered=(\d+)"
)
BROKER = re.compile(r"kafka broker (\S+) \(pid (\d+)\) up")
FAKE = re.compile(r"fake LLM http://127\.0\.0\.1:(\d+)/v1 \(")
WORKDIR = re.compile(r"work folder (\S+)")


def expected_route(claim: dict[str, Any]) -> str:
    """The rule a claim should hit, written independently of the demo's fake-LLM rules."""
    if re.search(r"\b(stolen|cash)\b", claim["description"], re.IGNORECASE):
        return "human_review"
    if not claim["documents"]:
        return "request_more_info"
    return "auto_approve"


def demo_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("STREAMING_AGENTS_MODEL", None)  # always the fake LLM here
    return env


def session_members(sid: int) -> list[str]:
    """``pid cmdline`` of live (non-zombie) processes in session ``sid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:
            found.append(f"{stat.parent.name} {cmdline[:200]}")
    return found


def pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def assert_nothing_left(demo_pid: int, stderr: str) -> None:
    broker, fake, workdir = BROKER.search(stderr), FAKE.search(stderr), WORKDIR.search(stderr)
    assert broker and fake and workdir, stderr
    deadline = time.monotonic() + 20  # PyFlink's gateway JVM exits once its stdin closes
    while session_members(demo_pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_members(demo_pid) == [], "processes of the demo still running"
    assert not pid_alive(int(broker.group(2))), "the Kafka broker still runs"
    assert not port_open(int(broker.group(1).rsplit(":", 1)[1])), "the broker port still answers"
    assert not port_open(int(fake.group(1))), "the fake LLM still answers"
    assert not Path(workdir.group(1)).exists(), "the work folder was not removed"


def start_demo(events: int, **popen: Any) -> subprocess.Popen[str]:
    """The demo in a session of its own (so its processes can be found), pipes for output."""
    return subprocess.Popen(
        [*DEMO, "--events", str(events)],
        cwd=ROOT,
        env=demo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **popen,
    )


def kill_if_running(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_demo_decides_every_claim_once_by_its_rule() -> None:
    events = 12
    started = time.monotonic()
    proc = start_demo(events)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        kill_if_running(proc)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, f"stdout:\n{stdout}\nstderr:\n{stderr}"
    print(f"demo --events {events}: {elapsed:.1f} s")

    records = _generate_claims(events, 42)
    claims = {r["claim_id"]: r for r in records if isinstance(r, dict)}
    malformed = [r for r in records if isinstance(r, str)]
    assert malformed, "the sample data includes malformed records"

    decided = [m.groups() for line in stdout.splitlines() if (m := DECISION.match(line))]
    ids = [claim_id for claim_id, *_ in decided]
    assert sorted(ids) == sorted(claims), "exactly one decision per well-formed claim"
    for claim_id, policy_id, route, score in decided:
        claim = claims[claim_id]
        assert policy_id == claim["policy_id"]
        assert route == expected_route(claim), (claim, route)
        assert 0.0 <= float(score) <= 1.0

    dead_lines = [line for line in stdout.splitlines() if line.strip().startswith("dead-letter")]
    assert len(dead_lines) == len(malformed)

    summary = [m.groups() for line in stdout.splitlines() if (m := SUMMARY.match(line))]
    assert len(summary) == 1, stdout
    total, auto, human, more, dead = map(int, summary[0])
    expected = [expected_route(c) for c in claims.values()]
    assert total == events
    assert (auto, human, more) == (
        expected.count("auto_approve"),
        expected.count("human_review"),
        expected.count("request_more_info"),
    )
    assert dead == len(malformed)
    assert_nothing_left(proc.pid, stderr)


def _ignore_sigint() -> None:
    """What a shell does to a command it starts in the background without job control."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "moment", ["topics created", "running the claims-triage job"], ids=["setup", "job"]
)
def test_demo_ctrl_c_stops_everything_even_if_started_with_sigint_ignored(moment: str) -> None:
    """SIGINT to the demo's process group (what Ctrl-C in a terminal sends), to a demo that
    inherited SIGINT as ignored: it must still stop, exit 130 and leave nothing running."""
    proc = start_demo(6, preexec_fn=_ignore_sigint)
    lines: list[str] = []
    reached = threading.Event()

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if moment in line:
                reached.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert reached.wait(240), "".join(lines)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        kill_if_running(proc)
    reader.join(timeout=10)
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr
    assert "streaming-agents: interrupted" in stderr
    assert "job finished" not in stderr, "the job ran to its end despite the interrupt"
    assert "Traceback" not in stderr, "an interrupt is reported in one line, not a traceback"
    assert_nothing_left(proc.pid, stderr)
