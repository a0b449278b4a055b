"""Token and cost budgets per agent and time window.

Spend is kept outside Flink state, in a ledger that survives restarts (a
budget must not reset because a job was restored): a SQLite file on one host
or a Kafka topic shared by every host (see
:mod:`streaming_agents.journal.ledger` for the reservation protocol and its
overshoot bound, and :func:`streaming_agents.journal.factory.ledger_uri` for
where the ledger is).  A call is reserved before it is made and settled to
its actual usage after; journal hits are free.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Budget"]


class Budget(BaseModel):
    """Limits per ``window_s``; what to do with events once they are reached.

    ``park``: the event waits (in keyed state, checkpointed) until the next
    window; ``dead_letter``: it goes to the dead-letter output with reason
    ``over budget``.  Never dropped.  ``ledger``: where spend is kept (a URI,
    ``sqlite://...`` or ``kafka://bootstrap/topic``; default beside the
    journal); ``ledger_path`` is the older spelling of a SQLite file.
    ``reserve_tokens``/``reserve_cost_usd``: what each call reserves before
    it is made (default: the subtask's average call so far); set them to a
    call's maximum for a budget that is never overshot.
    """

    model_config = ConfigDict(frozen=True)

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)
    window_s: int = Field(default=3600, ge=1)
    on_exceeded: Literal["park", "dead_letter"] = "park"
    ledger: str | None = None
    ledger_path: str | None = None
    reserve_tokens: int | None = Field(default=None, ge=1)
    reserve_cost_usd: float | None = Field(default=None, ge=0)

    def window(self, now: float | None = None) -> int:
        return int((time.time() if now is None else now) // self.window_s)

    def seconds_to_next_window(self) -> float:
        return self.window_s - (time.time() % self.window_s)

    def ledger_uri(self) -> str | None:
        """The ledger URI this budget names, if any (``ledger`` over ``ledger_path``)."""
        if self.ledger:
            return self.ledger
        return f"sqlite://{self.ledger_path}" if self.ledger_path else None
