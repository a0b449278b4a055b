"""Session fixtures: the real parts every test talks to.

They live in streaming_agents.testing so users can load them in their own
suites with ``pytest_plugins = ["streaming_agents.testing.fixtures"]``.
"""

import os

import pytest

pytest_plugins = ["streaming_agents.testing.fixtures"]


@pytest.fixture(scope="session", autouse=True)
def _fake_api_key() -> None:
    """The API key agents in tests read (set before any JVM starts, so workers see it)."""
    os.environ.setdefault("FAKE_LLM_API_KEY", "sk-fake-test-key")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
