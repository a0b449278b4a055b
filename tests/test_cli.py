"""The ``streaming-agents`` CLI: version, help, usage and user errors (no demo run here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streaming_agents import __version__
from streaming_agents.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"streaming-agents {__version__}"
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"streaming-agents {__version__}"


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err
    assert err.startswith("usage: streaming-agents")


def test_no_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: streaming-agents" in out
    assert "demo" in out and "version" in out
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("--events", "--model", "STREAMING_AGENTS_MODEL"):
        assert text in out


def test_bad_argument_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--events", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err
    # Checked before anything is started: a UserError, reported in one line.
    assert main(["demo", "--events", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "streaming-agents: error: --events must be between 1 and 10000, got 0\n"


def test_real_model_without_its_key_is_a_user_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("STREAMING_AGENTS_MODEL", "openai/gpt-4o-mini")
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "STREAMING_AGENTS_MODEL" in err
    assert main(["demo", "--model", "no-such-provider-model"]) == 2
    assert "cannot tell the provider" in capsys.readouterr().err


def test_module_and_console_script_entry_points() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "streaming_agents.cli.main", "version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert (module.returncode, module.stdout.strip()) == (0, f"streaming-agents {__version__}")
    assert module.stderr == ""
    script = Path(sys.executable).with_name("streaming-agents")
    if not script.exists():
        pytest.skip("console script not installed (run `make install`)")
    done = subprocess.run([str(script), "bogus"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_importing_the_cli_starts_nothing_heavy() -> None:
    code = (
        "import sys, streaming_agents.cli.main; "
        "print(sorted(m for m in ('pyflink', 'litellm', 'confluent_kafka') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
