"""The public API is exactly what __all__ says, and every name resolves."""

import streaming_agents


def test_all_exports_resolve() -> None:
    for name in streaming_agents.__all__:
        assert getattr(streaming_agents, name) is not None, name


def test_public_api_is_pinned() -> None:
    expected = [
        "Agent", "AgentOutput", "Budget", "BudgetExceeded", "CircuitBreaker", "ConfigError",
        "ConversationMemory", "InfrastructureError", "Journal", "LLMCallError", "LLMRequest",
        "LLMResult", "Memory", "MemoryPolicy", "ModelSpec", "NullJournal", "RuntimeFailure",
        "SqliteJournal", "StreamingAgentsError", "Tool", "Turn", "UnusableReply", "Usage",
        "UserError", "__version__", "audit_log", "dead_letters", "run_agent", "tool",
    ]  # fmt: skip
    assert sorted(streaming_agents.__all__) == sorted(expected)


def test_no_private_names_leak() -> None:
    import inspect

    public = {n for n in dir(streaming_agents) if not n.startswith("_")}
    extra = {n for n in public - set(streaming_agents.__all__)}
    # submodules appear as attributes once imported; anything else must be in __all__
    leaked = {n for n in extra if not inspect.ismodule(getattr(streaming_agents, n))}
    assert leaked == {"annotations", "Any"}
