"""Ctrl-C and SIGTERM for the CLI: both interrupt a command, whatever the process inherited.

A shell that starts a command in the background without job control (``cmd &``
in a script, some CI runners) starts it with SIGINT *ignored*, and Python then
installs no ``KeyboardInterrupt`` handler: Ctrl-C, or a supervisor's SIGINT,
would be dropped and a demo or job would run to its end with its broker and
fake LLM.  :func:`interruptible` installs the handler explicitly; cleanup code
runs under :func:`interrupts_ignored` so a second Ctrl-C cannot cut it short.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["interruptible", "interrupts_ignored"]

Handler = Callable[[int, FrameType | None], Any] | int | None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _set_handler(sig: signal.Signals, handler: Handler) -> Handler:
    """Install ``handler`` (main thread only; elsewhere signals stay as they are)."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(sig, handler)


@contextlib.contextmanager
def _handlers(handler: Handler) -> Iterator[None]:
    saved = {sig: _set_handler(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            _set_handler(sig, previous)


def interruptible() -> contextlib.AbstractContextManager[None]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` inside the block."""
    return _handlers(_raise_interrupt)


def interrupts_ignored() -> contextlib.AbstractContextManager[None]:
    """SIGINT and SIGTERM are ignored inside the block (cleanup must finish)."""
    return _handlers(signal.SIG_IGN)
