"""Proactive supply-chain disruption: one agent per region over positions, stock and weather.

``job`` holds the agent, its schemas and :func:`build`; ``sample_data`` generates
deterministic sample records and the fake-LLM rules that answer them; ``spec``
registers the job (``streaming-agents agents|run|submit``).  See README.md.

Imports inside the package are relative, so it works both as
``jobs.supply_chain`` and when loaded by path under another name.
"""

from __future__ import annotations

from .job import (
    AGENT_NAME,
    SYSTEM_PROMPT,
    Action,
    Assessment,
    Notification,
    RegionContext,
    ShipmentPosition,
    StockLevel,
    WeatherAlert,
    build,
    parse_event,
    render_event,
    supply_chain_agent,
)
from .sample_data import REGIONS, fake_rules, generate

__all__ = [
    "AGENT_NAME",
    "REGIONS",
    "SYSTEM_PROMPT",
    "Action",
    "Assessment",
    "Notification",
    "RegionContext",
    "ShipmentPosition",
    "StockLevel",
    "WeatherAlert",
    "build",
    "fake_rules",
    "generate",
    "parse_event",
    "render_event",
    "supply_chain_agent",
]
