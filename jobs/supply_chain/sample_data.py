"""Deterministic sample data for the supply-chain job, and fake-LLM rules that answer it.

``generate(n, seed)`` returns ``n`` records in production order as
``(role, key, value)``: first the weather alerts of the day (about one record in
eight, at least two, one region always under a severe storm and one under a
minor alert), then stock levels and shipment positions interleaved, with
``n // 12`` malformed records among them (truncated JSON, a position off the
globe, a stock level without a region) that end up on the dead-letter topic.

``fake_rules()`` scripts the fake LLM: the first rule whose regex is found in the
agent's user message picks the reply (see ``render_event`` in ``job.py``).
"""

from __future__ import annotations

import json
import random
from typing import Any

__all__ = ["REGIONS", "fake_rules", "generate"]

REGIONS = ("north-sea", "rhine-valley", "gulf-coast", "alps")
_WAREHOUSES = {region: f"WH-{region[:2].upper()}-{i}" for i, region in enumerate(REGIONS, 1)}
_SKUS = ("SKU-100", "SKU-101", "SKU-102", "SKU-103")
_DAY = "2025-03-10"
_STATUSES = ("in_transit",) * 5 + ("delayed",) * 3 + ("at_port",) * 2 + ("delivered",)
_ALERTS = (
    ("storm", "Gale-force winds and high seas; ports may close"),
    ("flood", "River levels rising; road closures likely"),
    ("snow", "Heavy snowfall on mountain passes"),
    ("fog", "Dense fog reducing visibility"),
)


def _time(hour: int, minute: int = 0) -> str:
    return f"{_DAY}T{hour:02d}:{minute:02d}:00+00:00"


def _weather(rng: random.Random, index: int) -> dict[str, Any]:
    region = REGIONS[index % len(REGIONS)]
    # one severe and one minor alert come first, so both kinds are always in the sample
    severity = ("severe", "minor")[index] if index < 2 else rng.choice(("moderate", "extreme"))
    kind, headline = _ALERTS[index % len(_ALERTS)]
    return {
        "alert_id": f"ALR-{index + 1:03d}",
        "region": region,
        "kind": kind,
        "severity": severity,
        "headline": headline,
        "starts_at": _time(6),
        "ends_at": f"{_DAY[:-2]}11T06:00:00+00:00",
        "ts": _time(6, index),
    }


def _stock(rng: random.Random, index: int) -> dict[str, Any]:
    region = rng.choice(REGIONS)
    reorder = rng.choice((40, 50, 60))
    on_hand = rng.randrange(0, reorder) if rng.random() < 0.4 else rng.randrange(reorder, 400)
    return {
        "warehouse_id": _WAREHOUSES[region],
        "region": region,
        "sku": rng.choice(_SKUS),
        "on_hand": on_hand,
        "reorder_point": reorder,
        "ts": _time(8 + index % 12, index % 60),
    }


def _position(rng: random.Random, index: int) -> dict[str, Any]:
    region = rng.choice(REGIONS)
    return {
        "shipment_id": f"SHP-{index + 1:04d}",
        "region": region,
        "lat": round(rng.uniform(35, 60), 4),
        "lon": round(rng.uniform(-95, 15), 4),
        "status": rng.choice(_STATUSES),
        "destination": _WAREHOUSES[rng.choice(REGIONS)],
        "sku": rng.choice(_SKUS),
        "quantity": rng.randrange(10, 500),
        "eta": f"{_DAY[:-2]}1{rng.randrange(1, 5)}T12:00:00+00:00",
        "ts": _time(8 + index % 12, index % 60),
    }


def _malformed(index: int, variant: int) -> tuple[str, str | None, str]:
    if variant == 0:  # truncated JSON on the positions topic
        return "positions", None, f'{{"shipment_id": "SHP-X{index}", "region": "alps", "lat": 4'
    if variant == 1:  # a position off the globe: JSON, but not a valid position
        bad = {
            "shipment_id": f"SHP-X{index}",
            "region": "north-sea",
            "lat": 200.0,
            "lon": 0.0,
            "status": "in_transit",
            "destination": "WH-NO-1",
            "sku": "SKU-100",
            "quantity": 5,
            "eta": _time(23),
            "ts": _time(9),
        }
        return "positions", "north-sea", json.dumps(bad)
    # a stock level without a region
    bad = {"warehouse_id": "WH-??", "sku": "SKU-100", "on_hand": 3, "reorder_point": 10}
    return "stock", None, json.dumps(bad)


def generate(n: int, seed: int = 7) -> list[tuple[str, str | None, str]]:
    """``n`` records ``(role, key, value)``: weather first, then stock and positions."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    alerts = min(n, max(2, n // 8))
    records: list[tuple[str, str | None, str]] = []
    for index in range(alerts):
        alert = _weather(rng, index)
        records.append(("weather", alert["region"], json.dumps(alert)))
    rest = n - alerts
    malformed = set(rng.sample(range(rest), min(rest, n // 12)))
    bad = 0
    for index in range(rest):
        if index in malformed:
            records.append(_malformed(index, bad % 3))
            bad += 1
        elif rng.random() < 0.4:
            stock = _stock(rng, index)
            records.append(("stock", stock["region"], json.dumps(stock)))
        else:
            position = _position(rng, index)
            records.append(("positions", position["region"], json.dumps(position)))
    return records


def _reply(
    risk: str, actions: list[tuple[str, str]], notes: list[tuple[str, str]], summary: str
) -> dict[str, Any]:
    return {
        "risk": risk,
        "actions": [{"kind": kind, "target": "", "detail": detail} for kind, detail in actions],
        "notifications": [{"audience": who, "message": text} for who, text in notes],
        "summary": summary,
    }


def fake_rules() -> list[dict[str, Any]]:
    """Fake-LLM rules: the event type, its state and the severe weather in force pick the reply.

    * weather alert, severe/extreme -> high: hold shipments, tell logistics;
      any other alert -> low: monitor;
    * stock below its reorder point with severe weather in force -> high: transfer
      stock, tell the warehouse and logistics; below it otherwise -> medium:
      expedite replenishment, tell the warehouse; stock ok -> low: none;
    * a shipment not yet delivered with severe weather in force -> high: reroute,
      tell logistics and the customer; delayed -> medium: notify the customer;
      otherwise -> low: none.
    """
    severe_next = r"\nSevere weather in force: (?!none)"
    return [
        {
            "match": r"(?m)^New event: weather alert [^\n]*severity (severe|extreme)",
            "json": _reply(
                "high",
                [("hold_shipments", "hold departures into the region until the alert ends")],
                [("logistics", "Severe weather alert: hold departures into the region.")],
                "severe weather alert",
            ),
        },
        {
            "match": r"(?m)^New event: weather alert ",
            "json": _reply("low", [("monitor", "watch the alert")], [], "minor weather alert"),
        },
        {
            "match": r"(?m)^New event: stock level [^\n]*BELOW reorder point\)" + severe_next,
            "json": _reply(
                "high",
                [("transfer_stock", "replenishment blocked by severe weather")],
                [
                    ("warehouse", "Stock below reorder point; transfer from another region."),
                    ("logistics", "Arrange an inter-region stock transfer."),
                ],
                "low stock while severe weather blocks replenishment",
            ),
        },
        {
            "match": r"(?m)^New event: stock level [^\n]*BELOW reorder point",
            "json": _reply(
                "medium",
                [("expedite_replenishment", "order now, express freight")],
                [("warehouse", "Stock below reorder point; replenishment expedited.")],
                "stock below reorder point",
            ),
        },
        {
            "match": r"(?m)^New event: stock level ",
            "json": _reply("low", [("none", "")], [], "stock ok"),
        },
        {
            "match": r"(?m)^New event: shipment position [^\n]*status (in_transit|delayed|at_port)"
            + r"[^\n]*"
            + severe_next,
            "json": _reply(
                "high",
                [("reroute", "avoid the area under severe weather")],
                [
                    ("logistics", "Reroute the shipment around the severe weather."),
                    ("customer", "Your delivery may be late because of severe weather."),
                ],
                "shipment exposed to severe weather",
            ),
        },
        {
            "match": r"(?m)^New event: shipment position [^\n]*status delayed",
            "json": _reply(
                "medium",
                [("notify_customer", "delivery delayed")],
                [("customer", "Your delivery is delayed; we will send a new ETA.")],
                "shipment delayed",
            ),
        },
        {
            "match": r"(?m)^New event: shipment position ",
            "json": _reply("low", [("none", "")], [], "shipment on track"),
        },
    ]
