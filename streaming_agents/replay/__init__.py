"""Replay history, dark-launch candidates and compare them with production.

* :func:`replay` -- run an agent version over a bounded slice of a topic
  (:class:`ReplayRange`) into a shadow topic, side effects fenced, optionally
  answering from a production journal read where it is, Kafka or SQLite
  (deterministic re-run, with a divergence report where the prompts changed);
* :func:`streaming_agents.replay.history.reconstruct` -- time travel: one key's
  memory at a past decision, rebuilt from the input and the journal, no LLM call;
* :func:`shadow` -- run a candidate on the live topic beside production;
* :func:`compare` -- join production and candidate outputs by input and
  report agreement, per-field agreement, differing cases, token, cost and
  latency deltas (:func:`render_table`, :func:`render_html`).

See docs/replay.md.  Importing this package starts no JVM.
"""

from __future__ import annotations

from streaming_agents.replay.compare import ComparisonReport, compare_outputs
from streaming_agents.replay.compare import compare_topics as compare
from streaming_agents.replay.divergence import Divergence, FencedCall, find_divergences
from streaming_agents.replay.errors import (
    BadRange,
    MissingTopic,
    NoOverlap,
    ReplayError,
    SchemaMismatch,
    UnsafeTarget,
)
from streaming_agents.replay.job import ReplayResult, ShadowRun, replay, shadow
from streaming_agents.replay.loading import load_agent
from streaming_agents.replay.ranges import Position, ReplayRange, parse_position
from streaming_agents.replay.render import render_html, render_table

__all__ = [
    "BadRange",
    "ComparisonReport",
    "Divergence",
    "FencedCall",
    "MissingTopic",
    "NoOverlap",
    "Position",
    "ReplayError",
    "ReplayRange",
    "ReplayResult",
    "SchemaMismatch",
    "ShadowRun",
    "UnsafeTarget",
    "compare",
    "compare_outputs",
    "find_divergences",
    "load_agent",
    "parse_position",
    "render_html",
    "render_table",
    "replay",
    "shadow",
]
