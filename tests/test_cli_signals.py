"""Ctrl-C / SIGTERM handling of the CLI (``cli/signals.py``), in this process."""

from __future__ import annotations

import os
import signal

import pytest

from streaming_agents.cli.main import _exit_code
from streaming_agents.cli.signals import Interrupts, interruptible, interrupts_ignored
from streaming_agents.errors import ConfigError


def test_sigint_interrupts_even_when_it_was_ignored_and_the_old_handler_comes_back() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt), interruptible() as interrupts:
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0.5)  # let the handler run
            for _ in range(1000):  # in case it runs only at the next bytecodes
                pass
        assert interrupts.received == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_nested_blocks_share_what_they_received() -> None:
    with interruptible() as outer:
        with pytest.raises(KeyboardInterrupt), interruptible() as inner:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.5)
        assert inner is outer
        assert outer.received == [signal.SIGTERM]
        with interrupts_ignored():
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: cleanup goes on
        assert outer.received == [signal.SIGTERM]


def test_an_interrupt_turned_into_another_error_still_exits_130(
    capsys: pytest.CaptureFixture[str],
) -> None:
    interrupts = Interrupts()
    interrupts.received.append(signal.SIGINT)
    # what confluent-kafka's Producer() raised when the signal landed inside it
    mangled = TypeError("expected configuration property name as type unicode string")
    assert _exit_code(mangled, interrupts) == 130
    assert "interrupted" in capsys.readouterr().err
    assert _exit_code(ConfigError("bad"), Interrupts()) == 2
    with pytest.raises(TypeError):
        _exit_code(mangled, Interrupts())  # without a signal it is a bug: not hidden
