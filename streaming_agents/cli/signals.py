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
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["Interrupts", "interruptible", "interrupts_ignored"]

Handler = Callable[[int, FrameType | None], Any] | int | None
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """The signals received inside :func:`interruptible`.

    The ``KeyboardInterrupt`` a signal raises can surface inside a C extension
    that turns it into another error (confluent-kafka's ``Producer()`` raised
    ``TypeError`` for it): whether a signal arrived is the fact to go by, not
    the exception that came out.
    """

    def __init__(self) -> None:
        self.received: list[int] = []

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
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


class _Py4JInterruptNoise(logging.Filter):
    """py4j logs every interrupted gateway call with a traceback at ERROR on the root
    logger, before the interrupt reaches the CLI; the CLI reports it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "KeyboardInterrupt while sending command."


_active: list[Interrupts] = []


@contextlib.contextmanager
def interruptible() -> Iterator[Interrupts]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` inside the block, and are recorded.

    Nested blocks share the outermost block's :class:`Interrupts`.
    """
    if _active:
        yield _active[-1]
        return
    interrupts = Interrupts()
    root, noise = logging.getLogger(), _Py4JInterruptNoise()
    root.addFilter(noise)
    _active.append(interrupts)
    try:
        with _handlers(interrupts.handler):
            yield interrupts
    finally:
        _active.pop()
        root.removeFilter(noise)


def interrupts_ignored() -> contextlib.AbstractContextManager[None]:
    """SIGINT and SIGTERM are ignored inside the block (cleanup must finish)."""
    return _handlers(signal.SIG_IGN)
