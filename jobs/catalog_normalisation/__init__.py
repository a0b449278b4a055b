"""Catalog normalisation: partner product data standardised and checked, keyed by partner.

``job`` holds the agent, its schemas, the deterministic unit and attribute
normalisation and :func:`build`; ``sample_data`` generates deterministic
partner records and the fake-LLM rules that answer them; ``spec`` registers the
job (``streaming-agents agents|run|submit``).  See README.md.

Imports inside the package are relative, so it works both as
``jobs.catalog_normalisation`` and when loaded by path under another name.
"""

from __future__ import annotations

from .job import (
    AGENT_NAME,
    ATTRIBUTE_SYNONYMS,
    SYSTEM_PROMPT,
    TAXONOMY,
    CatalogJudgement,
    Issue,
    Measure,
    NormalisedProduct,
    PartnerProduct,
    PartnerProfile,
    build,
    catalog_agent,
    normalise,
    parse_measure,
    render_product,
)
from .sample_data import CATEGORY_MAP, PARTNERS, fake_rules, generate

__all__ = [
    "AGENT_NAME",
    "ATTRIBUTE_SYNONYMS",
    "CATEGORY_MAP",
    "PARTNERS",
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
    "fake_rules",
    "generate",
    "normalise",
    "parse_measure",
    "render_product",
]
