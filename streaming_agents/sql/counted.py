"""``flat_map`` steps that count rows for the SQL runner's verdict (:mod:`.tally`).

A plain callable given to ``flat_map`` gets no ``close()``; wrapped in
:class:`CountedStep` it does, and that closes the step's ``tally`` when the
operator closes (the job's end), so every count is readable by the runner
before it gives its verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pyflink.datastream.functions import FlatMapFunction

from streaming_agents.sql.tally import Tally

__all__ = ["CountedStep"]


class CountedStep(FlatMapFunction):  # type: ignore[misc]
    """``step`` as a closable ``flat_map`` whose ``close()`` closes ``tally``.

    ``tally`` defaults to the step's own ``tally`` attribute (None: nothing to close).
    """

    def __init__(self, step: Callable[[Any], Iterable[Any]], tally: Tally | None = None) -> None:
        self.step = step
        self.tally = tally if tally is not None else getattr(step, "tally", None)

    def open(self, runtime_context: Any) -> None:
        from streaming_agents.runtime import shipped_imports

        shipped_imports.install()  # a later job's shipped copy can import what this one did not

    def flat_map(self, value: Any) -> Iterable[Any]:
        return self.step(value)

    def close(self) -> None:
        if self.tally is not None:
            self.tally.close()
