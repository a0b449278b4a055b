"""Failures are loud and short: a wrong broker is one line; a mostly dead-lettered run exits 1.

The CLI runs as a new process (``python -m streaming_agents.cli.main``) from a temporary
folder holding the agent module, against the session's broker; "the LLM is unreachable"
is a model URL on a port nothing listens on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from streaming_agents.cli.failures import (
    RATIO_ENV,
    MostlyDeadLettered,
    check_dead_letters,
    max_dead_letter_ratio,
)
from streaming_agents.errors import ConfigError
from streaming_agents.testing.kafka import produce

CLI = [sys.executable, "-m", "streaming_agents.cli.main"]
AGENT = """
import os
from streaming_agents import Agent, ModelSpec

agent = Agent(
    name="loud", version="1",
    model=ModelSpec(model="openai/x", api_base=os.environ["DEAD_LLM"], api_key_env="DEAD_KEY",
                    timeout_s=2.0, num_retries=0),
    prompt="{text}",
)
"""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_threshold_is_settable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    args = argparse.Namespace(max_dead_letter_ratio=None)
    monkeypatch.delenv(RATIO_ENV, raising=False)
    assert max_dead_letter_ratio(args) == 0.5
    monkeypatch.setenv(RATIO_ENV, "0.9")
    assert max_dead_letter_ratio(args) == 0.9
    assert max_dead_letter_ratio(argparse.Namespace(max_dead_letter_ratio=0.2)) == 0.2
    with pytest.raises(ConfigError):
        max_dead_letter_ratio(argparse.Namespace(max_dead_letter_ratio=1.5))
    check_dead_letters("run", 10, ["llm_error"] * 5, 0.5)  # exactly half: allowed
    with pytest.raises(MostlyDeadLettered, match=r"6 of 10 events dead-lettered \(60%.*llm_error"):
        check_dead_letters("run", 10, ["llm_error"] * 6, 0.5)
    check_dead_letters("run", 10, ["llm_error"] * 10, 1.0)  # 1 disables


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "loud_agent.py").write_text(AGENT)
    bootstrap = f"127.0.0.1:{_closed_port()}"
    env = {**os.environ, "DEAD_LLM": "http://127.0.0.1:9/v1", "DEAD_KEY": "sk-dead"}
    done = subprocess.run(
        [*CLI, "replay", "--agent", "loud_agent:agent", "--topic", "t", "--shadow-topic",
         "t-shadow", "--bootstrap", bootstrap],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"streaming-agents: failed: no Kafka broker answers at {bootstrap}")


def test_replay_with_an_unreachable_llm_fails_loudly(
    tmp_path: Path, kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    (tmp_path / "loud_agent.py").write_text(AGENT)
    topic = topic_factory("loud")
    events = [json.dumps({"key": f"k{i}", "text": "hi"}) for i in range(6)]
    produce(kafka_bootstrap, topic, [(None, e) for e in events])
    env = {
        **os.environ,
        "DEAD_LLM": f"http://127.0.0.1:{_closed_port()}/v1",
        "DEAD_KEY": "sk-dead",
    }
    env.pop("LITELLM_LOG", None)  # the CLI quiets litellm by itself
    done = subprocess.run(
        [*CLI, "replay", "--agent", "loud_agent:agent", "--topic", topic,
         "--shadow-topic", f"{topic}-shadow", "--bootstrap", kafka_bootstrap, "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    failed = [ln for ln in done.stderr.splitlines() if ln.startswith("streaming-agents: failed:")]
    assert len(failed) == 1, done.stderr[-3000:]
    assert "6 of 6 events dead-lettered" in failed[0], failed
    assert "0 outputs, 6 dead letters" in done.stdout
    debug = [ln for ln in done.stderr.splitlines() if "LiteLLM" in ln or "DEBUG" in ln]
    assert not debug, debug[:5]


def test_bounded_run_with_an_unreachable_llm_fails_loudly(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {"claims": f"loud-claims-{suffix}", "decisions": f"loud-dec-{suffix}"}
    topics["dlq"] = f"loud-dlq-{suffix}"
    env = {**os.environ, "DEAD_KEY": "sk-dead"}
    done = subprocess.run(
        [*CLI, "run", "claims_triage", "--bounded", "--sample", "6", "--create-topics",
         "--bootstrap", kafka_bootstrap, "--model", "openai/x",
         "--api-base", f"http://127.0.0.1:{_closed_port()}/v1", "--api-key-env", "DEAD_KEY",
         *(f"--topic={r}={t}" for r, t in topics.items())],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    failed = [ln for ln in done.stderr.splitlines() if ln.startswith("streaming-agents: failed:")]
    assert len(failed) == 1, done.stderr[-3000:]
    assert re.search(r"claims-triage: \d of \d+ events dead-lettered", failed[0]), failed


def test_unbounded_run_stopped_with_ctrl_c_says_it_was_mostly_dead_letters(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """An unbounded run never ends by itself: Ctrl-C gives the verdict line, exit 130."""
    from streaming_agents.testing.kafka import consume_committed, create_topics

    suffix = uuid.uuid4().hex[:8]
    topics = {"claims": f"loud-u-claims-{suffix}", "decisions": f"loud-u-dec-{suffix}"}
    topics["dlq"] = f"loud-u-dlq-{suffix}"
    create_topics(kafka_bootstrap, topics.values())
    env = {**os.environ, "DEAD_KEY": "sk-dead"}
    run = subprocess.Popen(
        [*CLI, "run", "claims_triage", "--sample", "4", "--create-topics",
         "--bootstrap", kafka_bootstrap, "--model", "openai/x",
         "--api-base", f"http://127.0.0.1:{_closed_port()}/v1", "--api-key-env", "DEAD_KEY",
         *(f"--topic={r}={t}" for r, t in topics.items())],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # the job commits its dead letters at a checkpoint: wait for them, then Ctrl-C
        dead = consume_committed(kafka_bootstrap, topics["dlq"], expected=4, timeout_s=240)
        assert len(dead) == 4
        run.send_signal(signal.SIGINT)
        _out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err[-3000:]
    verdict = [ln for ln in err.splitlines() if "events dead-lettered" in ln]
    assert len(verdict) == 1, err[-3000:]
    assert re.search(r"claims-triage: 4 of 4 events dead-lettered", verdict[0]), verdict
    assert "interrupted" in err
