"""Budget ledgers: spend per (agent, window), reserved before a call, settled after.

The protocol every backend follows (:class:`Ledger`):

1. Before paying for a call, the caller asks :meth:`Ledger.reserve` for an
   estimate of its tokens and cost.  The reservation is granted iff the
   window's spend so far (granted reservations plus settlements) plus the
   estimate stays within the budget; a refused reservation counts nothing.
2. After the call, :meth:`Ledger.settle` adds ``actual - reserved`` (a call
   that failed settles to zero).

Overshoot bound.  A window's spend exceeds the budget by at most the sum,
over calls in flight when the budget ran out, of ``max(0, actual -
reserved)``: every grant kept the reserved total within the budget, and only
settlements can push it over.  A call that dies before settling keeps its
reservation (spend is over-counted, never under-counted).  Reserving each
call's maximum (``Budget.reserve_tokens`` = prompt + max completion tokens)
makes the bound zero.  An estimate is capped at the budget itself, so a
window with nothing spent always grants one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["BudgetLimits", "Ledger", "Reservation", "fits"]


@dataclass(frozen=True)
class BudgetLimits:
    """A budget's limits as the ledger sees them (every host of an agent has the same)."""

    max_tokens: int | None
    max_cost_usd: float | None


@dataclass(frozen=True)
class Reservation:
    """A granted reservation: settle it exactly once."""

    id: str
    agent: str
    window: int
    tokens: int
    cost: float


def fits(limits: BudgetLimits, spent: tuple[int, float], tokens: int, cost: float) -> bool:
    """Whether ``tokens``/``cost`` more stay within the limits after ``spent``."""
    if limits.max_tokens is not None and spent[0] + tokens > limits.max_tokens:
        return False
    return limits.max_cost_usd is None or spent[1] + cost <= limits.max_cost_usd + 1e-12


class Ledger(Protocol):
    """Spend per (agent, window) shared by every subtask that uses the same ledger."""

    async def reserve(
        self, agent: str, window: int, limits: BudgetLimits, tokens: int, cost: float
    ) -> Reservation | None:
        """A granted reservation, or ``None`` when it does not fit the window's budget."""
        ...

    async def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """Replace the reserved figures with what the call actually spent."""
        ...

    def spent(self, agent: str, window: int) -> tuple[int, float]:
        """Tokens and cost counted in the window so far (reservations included)."""
        ...

    def close(self) -> None: ...
