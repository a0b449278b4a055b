"""The public API is exactly what __all__ says: every name resolves, nothing else is public."""

import inspect

import streaming_agents

PINNED = [
    "MALFORMED_KEY", "Agent", "AgentOutput", "AgentPipeline", "Limits", "json_key",
    "Budget", "BudgetExceeded", "CircuitBreaker", "ConfigError",
    "ConversationMemory", "InfrastructureError", "Journal", "LLMCallError", "LLMRequest",
    "LLMResult", "Memory", "MemoryPolicy", "ModelSpec", "NullJournal", "RuntimeFailure",
    "SqliteJournal", "StreamingAgentsError", "Tool", "Turn", "UnusableReply", "Usage",
    "UserError", "__version__", "add_connector_jars", "audit_log", "connector_jar_uris",
    "dead_letters", "run_agent", "tool",
]  # fmt: skip
LAZY = {
    "run_agent": "streaming_agents.runtime.api",
    "dead_letters": "streaming_agents.runtime.api",
    "audit_log": "streaming_agents.runtime.api",
    "add_connector_jars": "streaming_agents.jars",
    "connector_jar_uris": "streaming_agents.jars",
}


def test_public_api_is_pinned() -> None:
    assert sorted(streaming_agents.__all__) == sorted(PINNED)


def test_all_exports_resolve_to_their_definitions() -> None:
    import importlib

    for name in streaming_agents.__all__:
        value = getattr(streaming_agents, name)
        assert value is not None, name
        if name in LAZY:
            assert value is getattr(importlib.import_module(LAZY[name]), name), name


def test_nothing_else_is_public() -> None:
    """Module attributes that are not submodules are exactly __all__ (no allowlist)."""
    eager = set(streaming_agents.__all__) - set(LAZY)
    for listing in (dir(streaming_agents), list(vars(streaming_agents))):
        public = {n for n in listing if not n.startswith("_")} | {"__version__"}
        names = {n for n in public if not inspect.ismodule(getattr(streaming_agents, n))}
        assert names - set(LAZY) == eager
    assert set(LAZY) <= set(dir(streaming_agents))


def test_unknown_names_raise_attribute_error() -> None:
    try:
        streaming_agents.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("streaming_agents.no_such_name resolved")
