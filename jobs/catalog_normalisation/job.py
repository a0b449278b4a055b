"""Catalog normalisation: partner product records -> key_by partner -> agent -> normalised products.

Partners send product data in their own conventions: imperial or metric units
written every which way (``2.2 lbs``, ``500g``, ``12 in``), their own attribute
names (``Color``, ``colour``, ``fabric``) and their own category trees.  The job
standardises each record:

* **deterministic code** parses measures into canonical units (kg, cm, l),
  canonicalises attribute names and checks what rules can check (a price, a
  parsable unit, one value per attribute);
* **the agent** maps the partner's category onto the shared taxonomy and flags
  what needs judgement (a title that contradicts the attributes, a category it
  cannot place).  Its memory per partner (:class:`PartnerProfile`) keeps the
  category mappings it already made, so a partner's tree is mapped
  consistently; a mapping that changes is flagged.

Every product yields one :class:`NormalisedProduct` with ``status`` =
``accepted`` (no issue), ``needs_review`` (warnings) or ``rejected`` (errors), in
the runtime's envelope on the output topic; records that are not products go to
the dead-letter topic.  Both sinks are exactly-once.

Flink workers cannot import the top-level ``jobs`` package, so this module
registers itself with cloudpickle to be shipped by value.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import cloudpickle  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from streaming_agents import Agent, Journal, LLMRequest, LLMResult, Memory, ModelSpec

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity

cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = [
    "AGENT_NAME",
    "ATTRIBUTE_SYNONYMS",
    "SYSTEM_PROMPT",
    "TAXONOMY",
    "CatalogJudgement",
    "Issue",
    "Measure",
    "NormalisedProduct",
    "PartnerProduct",
    "PartnerProfile",
    "build",
    "catalog_agent",
    "normalise",
    "parse_measure",
    "render_product",
]

AGENT_NAME = "catalog-normaliser"
"""The key of records without a ``partner_id`` (they are dead-lettered)."""

Category = Literal[
    "apparel/footwear",
    "apparel/clothing",
    "home/kitchen",
    "home/furniture",
    "electronics/computers",
    "electronics/audio",
    "other",
]
TAXONOMY: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
Severity = Literal["warning", "error"]
Status = Literal["accepted", "needs_review", "rejected"]

ATTRIBUTE_SYNONYMS = {
    "color": "colour",
    "colour": "colour",
    "fabric": "material",
    "material": "material",
    "size": "size",
    "shoe_size": "size",
    "weight": "weight",
    "net_weight": "weight",
    "length": "length",
    "width": "width",
    "height": "height",
    "depth": "depth",
    "capacity": "volume",
    "volume": "volume",
    "screen": "screen",
    "screen_size": "screen",
    "display": "screen",
}
"""Partner attribute names (lower case, ``_`` for spaces) -> canonical names."""

_MEASURES = {"weight": "kg", "length": "cm", "width": "cm", "height": "cm", "depth": "cm"}
_MEASURES |= {"volume": "l", "screen": "cm"}
_UNITS: dict[str, tuple[str, float]] = {
    "kg": ("kg", 1.0),
    "kgs": ("kg", 1.0),
    "g": ("kg", 0.001),
    "gr": ("kg", 0.001),
    "mg": ("kg", 1e-6),
    "lb": ("kg", 0.45359237),
    "lbs": ("kg", 0.45359237),
    "oz": ("kg", 0.028349523125),
    "cm": ("cm", 1.0),
    "mm": ("cm", 0.1),
    "m": ("cm", 100.0),
    "in": ("cm", 2.54),
    "inch": ("cm", 2.54),
    "inches": ("cm", 2.54),
    '"': ("cm", 2.54),
    "ft": ("cm", 30.48),
    "l": ("l", 1.0),
    "ltr": ("l", 1.0),
    "ml": ("l", 0.001),
    "cl": ("l", 0.01),
    "fl oz": ("l", 0.0295735295625),
    "gal": ("l", 3.785411784),
}
_MEASURE_RE = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([a-zA-Z\" ]+?)\s*$")

SYSTEM_PROMPT = f"""\
You normalise partner product data for a retail catalog. For each product, map the \
partner's category onto exactly one category of the taxonomy: {", ".join(TAXONOMY)} \
("other" when none fits, with a warning "category_unmapped"). Stay consistent with the \
mappings already made for this partner (listed with the product). Flag inconsistencies \
as issues: a title that contradicts an attribute (code "title_attribute_conflict"), a \
brand that does not match the title, implausible measures. Measures are already \
converted to kg, cm and l. Use severity "error" only for data that must not be \
published. Answer with JSON matching the schema only."""


# --------------------------------------------------------------------------- schemas


class PartnerProduct(BaseModel):
    """``partner-products``: one product as a partner sends it."""

    model_config = ConfigDict(extra="ignore")

    partner_id: str = Field(min_length=1)
    partner_sku: str = Field(min_length=1)
    title: str = Field(min_length=1)
    brand: str | None = None
    category: str = Field(min_length=1, description="the partner's own category path")
    attributes: dict[str, str] = Field(default_factory=dict)
    price: float | None = None
    currency: str = "EUR"


class Measure(BaseModel):
    value: float
    unit: Literal["kg", "cm", "l"]
    original: str


class Issue(BaseModel):
    field: str
    code: str
    severity: Severity
    message: str = ""


class CatalogJudgement(BaseModel):
    """What the model is asked for."""

    category: Category
    issues: list[Issue] = Field(default_factory=list)
    confidence: float = Field(default=1.0, ge=0, le=1)


class NormalisedProduct(BaseModel):
    """The job's output for one product."""

    partner_id: str
    partner_sku: str
    title: str
    brand: str | None
    partner_category: str
    category: Category
    attributes: dict[str, str]
    measures: dict[str, Measure]
    price: float | None
    currency: str
    issues: list[Issue]
    status: Status
    confidence: float


class PartnerProfile(Memory):
    """What the agent remembers about one partner."""

    SCHEMA_VERSION: ClassVar[int] = 1
    category_map: dict[str, str] = Field(default_factory=dict)
    products: int = 0
    issue_counts: dict[str, int] = Field(default_factory=dict)


# --------------------------------------------------------------------------- deterministic part


def parse_measure(raw: str, canonical: str) -> Measure | None:
    """``raw`` (``"2.2 lbs"``) in ``canonical`` units, or None if unit or number is unknown."""
    match = _MEASURE_RE.match(raw)
    if not match:
        return None
    number, unit = float(match.group(1).replace(",", ".")), match.group(2).strip().lower()
    known = _UNITS.get(unit)
    if known is None or known[0] != canonical:
        return None
    return Measure(value=round(number * known[1], 3), unit=known[0], original=raw)  # type: ignore[arg-type]


class Normalised(BaseModel):
    """The deterministic part of a normalised product (before the agent's judgement)."""

    title: str
    brand: str | None
    attributes: dict[str, str]
    measures: dict[str, Measure]
    currency: str
    issues: list[Issue]


def normalise(product: PartnerProduct) -> Normalised:
    """Canonical attribute names and units, and the issues rules can find."""
    issues: list[Issue] = []
    attributes: dict[str, str] = {}
    measures: dict[str, Measure] = {}
    for raw_name, raw_value in sorted(product.attributes.items()):
        key = re.sub(r"[\s\-]+", "_", raw_name.strip().lower())
        name = ATTRIBUTE_SYNONYMS.get(key, key)
        value = " ".join(raw_value.split())
        if name in _MEASURES:
            measure = parse_measure(value, _MEASURES[name])
            if measure is None:
                issues.append(
                    Issue(
                        field=name,
                        code="unit_unrecognised",
                        severity="warning",
                        message=f"cannot read {raw_name}={raw_value!r} as {_MEASURES[name]}",
                    )
                )
                attributes[name] = value
            else:
                measures[name] = measure
            continue
        value = value.lower()
        if name in attributes and attributes[name] != value:
            issues.append(
                Issue(
                    field=name,
                    code="conflicting_attribute",
                    severity="warning",
                    message=f"{name} given twice: {attributes[name]!r} and {value!r}",
                )
            )
            continue
        attributes[name] = value
    if product.price is None or product.price <= 0:
        issues.append(
            Issue(field="price", code="price_missing", severity="error", message="no valid price")
        )
    brand = " ".join(product.brand.split()).title() if product.brand else None
    return Normalised(
        title=" ".join(product.title.split()),
        brand=brand,
        attributes=attributes,
        measures=measures,
        currency=product.currency.strip().upper(),
        issues=issues,
    )


def render_product(product: PartnerProduct, norm: Normalised, profile: PartnerProfile) -> str:
    """The user message (the fake LLM's rules match on its lines)."""
    attributes = "; ".join(f"{k}={v}" for k, v in sorted(norm.attributes.items()))
    measures = "; ".join(
        f"{k}={m.value:g} {m.unit} (from {m.original!r})" for k, m in sorted(norm.measures.items())
    )
    mappings = "; ".join(f"{k} -> {v}" for k, v in sorted(profile.category_map.items()))
    price = "none" if product.price is None else f"{product.price:.2f} {norm.currency}"
    return "\n".join(
        [
            f"Partner: {product.partner_id}",
            f"Partner SKU: {product.partner_sku}",
            f"Partner category: {product.category}",
            f"Title: {norm.title}",
            f"Brand: {norm.brand or 'none'}",
            f"Attributes: {attributes or 'none'}",
            f"Measures: {measures or 'none'}",
            f"Price: {price}",
            f"Known category mappings for this partner: {mappings or 'none'}",
        ]
    )


def _status(issues: list[Issue]) -> Status:
    if any(i.severity == "error" for i in issues):
        return "rejected"
    return "needs_review" if issues else "accepted"


def _step(event: Any, memory: PartnerProfile) -> LLMRequest:
    product = PartnerProduct.model_validate(event)
    messages = (
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": render_product(product, normalise(product), memory)},
    )
    return LLMRequest(messages=messages, response_schema=CatalogJudgement.model_json_schema())


def _reduce(
    event: Any, memory: PartnerProfile, result: LLMResult
) -> tuple[PartnerProfile, list[Any]]:
    product = PartnerProduct.model_validate(event)
    norm = normalise(product)
    judgement = CatalogJudgement.model_validate_json(result.content)
    issues = [*norm.issues, *judgement.issues]
    known = memory.category_map.get(product.category)
    if known is not None and known != judgement.category:
        issues.append(
            Issue(
                field="category",
                code="category_changed",
                severity="warning",
                message=f"{product.category!r} was mapped to {known}, now {judgement.category}",
            )
        )
    counts = dict(memory.issue_counts)
    for issue in issues:
        counts[issue.code] = counts.get(issue.code, 0) + 1
    category_map = dict(memory.category_map)
    category_map.setdefault(product.category, judgement.category)
    new_memory = memory.model_copy(
        update={
            "category_map": category_map,
            "products": memory.products + 1,
            "issue_counts": counts,
            "turn_count": memory.turn_count + 1,
        }
    )
    output = NormalisedProduct(
        partner_id=product.partner_id,
        partner_sku=product.partner_sku,
        title=norm.title,
        brand=norm.brand,
        partner_category=product.category,
        category=judgement.category,
        attributes=norm.attributes,
        measures=norm.measures,
        price=product.price,
        currency=norm.currency,
        issues=issues,
        status=_status(issues),
        confidence=judgement.confidence,
    )
    return new_memory, [output.model_dump(mode="json")]


def catalog_agent(model: ModelSpec) -> Agent[PartnerProfile]:
    """The normalisation agent (memory: :class:`PartnerProfile`)."""
    return Agent(
        name=AGENT_NAME,
        version="1",
        model=model,
        system_prompt=SYSTEM_PROMPT,
        memory=PartnerProfile,
        output_schema=CatalogJudgement,
        step_fn=_step,
        reduce_fn=_reduce,
    )


def build(
    env: StreamExecutionEnvironment,
    bootstrap: str,
    in_topic: str,
    out_topic: str,
    dlq_topic: str,
    model: ModelSpec,
    *,
    bounded: bool = False,
    group_id: str = AGENT_NAME,
    journal: Journal | None = None,
    capacity: int = 100,
    properties: Mapping[str, str] | None = None,
    security: KafkaSecurity | None = None,
) -> None:
    """Add the job to ``env``: products -> key_by(partner_id) -> agent -> normalised / DLQ.

    The consumer group and the sinks' transactional-id prefix are the agent's
    name, so the ACLs the registry derives for the agent
    (:func:`~streaming_agents.connectors.acls.access_for_agent`) are exactly
    what the job needs.
    """
    from streaming_agents.pipeline import AgentPipeline

    streams = (
        AgentPipeline.from_kafka(
            env,
            bootstrap,
            in_topic,
            group_id,
            bounded=bounded,
            properties=properties,
            security=security,
            name="partner-products",
        )
        .key_by("partner_id")
        .apply(catalog_agent(model), capacity=capacity, journal=journal)
    )
    streams.to_kafka(
        bootstrap,
        outputs=out_topic,
        dead_letters=dlq_topic,
        transactional_id_prefix=f"{AGENT_NAME}-{out_topic}",
        properties=properties,
        security=security,
    )
