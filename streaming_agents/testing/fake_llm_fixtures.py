"""pytest fixtures for the fake OpenAI-compatible LLM server.

``fake_llm_server`` starts one server subprocess per session; ``fake_llm``
hands it to a test with counters zeroed and the default config (no latency,
no faults, no rules) restored.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streaming_agents.testing.fake_llm import FakeLLM

__all__ = ["fake_llm", "fake_llm_server"]


@pytest.fixture(scope="session")
def fake_llm_server() -> Iterator[FakeLLM]:
    """One fake LLM server for the whole session, stopped at its end."""
    server = FakeLLM().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_llm(fake_llm_server: FakeLLM) -> FakeLLM:
    """The session's fake LLM, reset to the default config with zeroed counters."""
    fake_llm_server.configure({})
    fake_llm_server.reset()
    return fake_llm_server
