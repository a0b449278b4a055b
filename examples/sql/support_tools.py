"""Tools for examples/sql/support_agent.sql (``CREATE TOOL ... USING FUNCTION``).

A tool is a typed Python function; the docstring's first paragraph is the
description the model sees unless ``CREATE TOOL ... WITH ('description' = ...)``
overrides it.  The SQL runner imports modules that sit next to the script.
"""

from __future__ import annotations

_ORDERS = {
    "A1": "shipped on Monday, arrives Thursday",
    "B2": "waiting for payment",
}


def order_status(order_id: str) -> dict[str, str]:
    """Look up the shipping status of an order by its id."""
    status = _ORDERS.get(order_id.strip().upper(), "unknown order id")
    return {"order_id": order_id, "status": status}
