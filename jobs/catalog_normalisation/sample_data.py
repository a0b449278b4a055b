"""Deterministic partner product records, and fake-LLM rules that answer them.

Three partners with their own conventions: ``P-ACME`` (imperial units,
``Shoes > Running``-style categories, ``Color``), ``P-GLOBEX`` (metric,
``Footwear/Trainers``-style, ``colour``) and ``P-INITECH`` (mixed units,
``fabric``).  ``generate(n, seed)`` returns ``n`` records ``(key, value)`` in
production order.  Among the products: roughly one in seven has a title that
contradicts its colour (a red title, a blue colour), one in nine a weight the
job cannot read (``heavy``), one in ten no price, one in eleven an
unmappable category (``Clearance``) and one in twelve the colour given twice
with different values; ``n // 10`` records are malformed (truncated JSON, no
title, a list instead of an object) and end up on the dead-letter topic.

``fake_rules()`` maps each partner category onto the taxonomy and flags the
red/blue contradiction, matching on the agent's user message (``render_product``).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

__all__ = ["CATEGORY_MAP", "PARTNERS", "fake_rules", "generate"]

PARTNERS = ("P-ACME", "P-GLOBEX", "P-INITECH")

CATEGORY_MAP = {
    "Shoes > Running": "apparel/footwear",
    "Footwear/Trainers": "apparel/footwear",
    "Kitchen > Cookware": "home/kitchen",
    "Home & Kitchen/Pots": "home/kitchen",
    "Computers > Laptops": "electronics/computers",
    "Electronics/Notebooks": "electronics/computers",
}
"""Partner category -> taxonomy category, as the fake LLM answers it (others: ``other``)."""

_FAMILIES: dict[str, dict[str, Any]] = {
    "footwear": {
        "categories": {"P-ACME": "Shoes > Running", "P-GLOBEX": "Footwear/Trainers"},
        "titles": ("Trail Runner {n}", "Road Racer {n}", "Cushion Jogger {n}"),
        "weights": {"imperial": ("1.2 lb", "14 oz", "0.9 lbs"), "metric": ("540 g", "0.4 kg")},
        "extra": {"size": ("42", "43", "10 US"), "material": ("mesh", "leather", "knit")},
    },
    "kitchen": {
        "categories": {"P-ACME": "Kitchen > Cookware", "P-GLOBEX": "Home & Kitchen/Pots"},
        "titles": ("Stock Pot {n}", "Saute Pan {n}", "Dutch Oven {n}"),
        "weights": {"imperial": ("4.5 lbs", "3 lb"), "metric": ("2.1 kg", "1800 g")},
        "extra": {"volume": ("5 l", "3.5 ltr", "128 fl oz"), "material": ("steel", "cast iron")},
    },
    "computers": {
        "categories": {"P-ACME": "Computers > Laptops", "P-GLOBEX": "Electronics/Notebooks"},
        "titles": ("ProBook {n}", "AirLite {n}", "Workstation {n}"),
        "weights": {"imperial": ("3.1 lbs", "4 lb"), "metric": ("1.4 kg", "1950 g")},
        "extra": {"screen": ('15.6"', "14 in", "35.6 cm"), "material": ("aluminium",)},
    },
}
_COLOURS = ("black", "white", "grey", "green")
_BRANDS = {"P-ACME": "acme sports", "P-GLOBEX": "GLOBEX", "P-INITECH": "initech  home"}


def _units(partner: str, rng: random.Random) -> str:
    if partner == "P-ACME":
        return "imperial"
    if partner == "P-GLOBEX":
        return "metric"
    return rng.choice(("imperial", "metric"))


def _product(rng: random.Random, index: int, kind: str) -> dict[str, Any]:
    partner = PARTNERS[index % len(PARTNERS)]
    family_name = rng.choice(tuple(_FAMILIES))
    if kind == "conflict":
        family_name = "footwear"
    family = _FAMILIES[family_name]
    categories = family["categories"]
    category = categories.get(partner) or rng.choice(tuple(categories.values()))
    colour = rng.choice(_COLOURS)
    title = rng.choice(family["titles"]).format(n=rng.randrange(2, 9))
    colour_key = {"P-ACME": "Color", "P-GLOBEX": "colour"}.get(partner, "Colour")
    attributes: dict[str, str] = {colour_key: colour.title()}
    attributes["Weight" if partner != "P-GLOBEX" else "net weight"] = rng.choice(
        family["weights"][_units(partner, rng)]
    )
    for name, values in family["extra"].items():
        key = "fabric" if name == "material" and partner == "P-INITECH" else name
        attributes[key] = rng.choice(values)
    price: float | None = round(rng.uniform(15, 1500), 2)
    if kind == "conflict":
        title, attributes[colour_key] = f"Red {title}", "Blue"
    elif kind == "bad_unit":
        attributes["Weight" if partner != "P-GLOBEX" else "net weight"] = "heavy"
    elif kind == "no_price":
        price = None
    elif kind == "unmapped":
        category = "Clearance"
    elif kind == "double_colour":
        other = "colour" if colour_key != "colour" else "color"
        attributes[other] = "Green" if colour != "green" else "Black"
    return {
        "partner_id": partner,
        "partner_sku": f"{partner[2:5]}-{index + 1:05d}",
        "title": f"  {title}  " if index % 5 == 0 else title,
        "brand": _BRANDS[partner],
        "category": category,
        "attributes": attributes,
        "price": price,
        "currency": "eur" if partner == "P-INITECH" else "EUR",
    }


_KINDS = ("clean",) * 3 + ("conflict", "clean", "bad_unit", "no_price", "unmapped", "double_colour")


def _malformed(index: int, variant: int) -> tuple[str | None, str]:
    partner = PARTNERS[index % len(PARTNERS)]
    if variant == 0:  # truncated JSON
        return None, f'{{"partner_id": "{partner}", "partner_sku": "X-{index}", "title": "Bro'
    if variant == 1:  # JSON, but no title
        return partner, json.dumps(
            {"partner_id": partner, "partner_sku": f"X-{index}", "category": "Shoes > Running"}
        )
    return None, json.dumps([partner, f"X-{index}", "not an object"])


def generate(n: int, seed: int = 11) -> list[tuple[str | None, str]]:
    """``n`` records ``(key, value)``; ``n // 10`` of them malformed."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    malformed = set(rng.sample(range(n), n // 10))
    records: list[tuple[str | None, str]] = []
    made = bad = 0
    for index in range(n):
        if index in malformed:
            records.append(_malformed(index, bad % 3))
            bad += 1
            continue
        product = _product(rng, index, _KINDS[made % len(_KINDS)])
        made += 1
        records.append((product["partner_id"], json.dumps(product)))
    return records


def fake_rules() -> list[dict[str, Any]]:
    """Fake-LLM rules: a red title with a blue colour is a conflict; categories by table."""

    def judgement(category: str, *issues: dict[str, str]) -> dict[str, Any]:
        return {"category": category, "issues": list(issues), "confidence": 0.9}

    conflict = {
        "field": "colour",
        "code": "title_attribute_conflict",
        "severity": "warning",
        "message": "the title says red, the colour attribute says blue",
    }
    unmapped = {
        "field": "category",
        "code": "category_unmapped",
        "severity": "warning",
        "message": "no taxonomy category fits the partner category",
    }
    rules: list[dict[str, Any]] = [
        {
            "match": r"(?m)^Title: Red\b[^\n]*\n(?:[^\n]*\n)*?Attributes: [^\n]*\bcolour=blue\b",
            "json": judgement("apparel/footwear", conflict),
        }
    ]
    for partner_category, category in CATEGORY_MAP.items():
        rules.append(
            {
                "match": f"(?m)^Partner category: {re.escape(partner_category)}$",
                "json": judgement(category),
            }
        )
    rules.append({"match": r"(?m)^Partner category: ", "json": judgement("other", unmapped)})
    return rules
