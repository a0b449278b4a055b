"""MCP tools: listed from a real MCP server (stdio and HTTP), invoked, pickled, run by the agent."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from agent_support import echo_agent, run_collect
from runner_support import run_events

from streaming_agents import ConfigError, InfrastructureError, SqliteJournal, Tool
from streaming_agents.mcp_tools import MCPServer, mcp_tools
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.testing.mcp_server import POLICIES, TICKETS_ENV, build_server

SERVER_MODULE = "streaming_agents.testing.mcp_server"


def _stdio(tickets: Path, **kw: Any) -> MCPServer:
    return MCPServer(command=(sys.executable, "-m", SERVER_MODULE, "--tickets", str(tickets)), **kw)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


@pytest.fixture(scope="module")
def tickets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp") / "tickets.jsonl"


@pytest.fixture(scope="module")
def listed(tickets: Path) -> list[Tool]:
    return mcp_tools(_stdio(tickets))


def test_listing_takes_names_descriptions_schemas_and_hints_from_the_server(
    listed: list[Tool],
) -> None:
    served = {t.name: t for t in asyncio.run(build_server(None).list_tools())}
    assert sorted(t.name for t in listed) == ["lookup_policy", "open_ticket"]
    for t in listed:
        declared = t.schema()["function"]
        assert declared["name"] == t.name
        assert declared["description"] == served[t.name].description
        assert declared["parameters"] == served[t.name].model_dump(by_alias=True)["inputSchema"]
    tools = _by_name(listed)
    assert tools["lookup_policy"].schema()["function"]["description"].startswith("Look up")
    assert tools["open_ticket"].schema()["function"]["parameters"]["required"] == ["summary"]
    # readOnlyHint=True -> read-only; no hint -> side-effecting (the safe default)
    assert tools["lookup_policy"].side_effecting is False
    assert tools["open_ticket"].side_effecting is True


def test_overrides_and_include(tickets: Path) -> None:
    server = _stdio(tickets)
    assert {t.side_effecting for t in mcp_tools(server, side_effecting=True)} == {True}
    assert {t.side_effecting for t in mcp_tools(server, side_effecting=False)} == {False}
    named = _by_name(mcp_tools(server, side_effecting={"lookup_policy"}))
    assert named["lookup_policy"].side_effecting and not named["open_ticket"].side_effecting
    assert [t.name for t in mcp_tools(server, include={"open_ticket"})] == ["open_ticket"]
    with pytest.raises(ConfigError, match="no tool"):
        mcp_tools(server, include={"open_tickets"})
    with pytest.raises(ConfigError, match="not a string"):
        mcp_tools(server, side_effecting="open_ticket")
    with pytest.raises(ConfigError, match="exactly one"):
        MCPServer()


def test_invoke_returns_the_servers_result_and_reports_bad_arguments(
    listed: list[Tool], tickets: Path
) -> None:
    tools = _by_name(listed)
    lookup = tools["lookup_policy"]
    assert json.loads(lookup.invoke('{"policy_id": "P-100"}')) == POLICIES["P-100"]
    # an error raised by the tool on the server is its result, for the model to see
    assert "no policy 'P-9'" in json.loads(lookup.invoke('{"policy_id": "P-9"}'))["error"]
    # arguments that break the server's schema are reported, never raised
    for bad in ('{"policy_id": 7}', "{}", "[1, 2]", "not json"):
        assert json.loads(lookup.invoke(bad))["error"].startswith("invalid arguments"), bad
    before = len(_lines(tickets))
    assert json.loads(tools["open_ticket"].invoke('{"summary": "roof leak"}'))["summary"] == (
        "roof leak"
    )
    assert json.loads(tools["open_ticket"].invoke('{"summary": 1}'))["error"]
    assert len(_lines(tickets)) == before + 1, "invalid arguments never reached the server"

    async def from_a_running_loop() -> str:
        return lookup.invoke('{"policy_id": "P-200"}')

    assert json.loads(asyncio.run(from_a_running_loop())) == POLICIES["P-200"]


def test_tools_survive_cloudpickle_and_secrets_stay_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "secret-tickets.jsonl"
    monkeypatch.setenv(TICKETS_ENV, str(secret_file))
    server = MCPServer(command=(sys.executable, "-m", SERVER_MODULE), env_names=(TICKETS_ENV,))
    blob = cloudpickle.dumps(mcp_tools(server))
    assert str(secret_file).encode() not in blob, "env values are read in the worker"
    tools = _by_name(cloudpickle.loads(blob))
    assert json.loads(tools["lookup_policy"].invoke('{"policy_id": "P-200"}'))["holder"] == "bob"
    assert json.loads(tools["open_ticket"].invoke('{"summary": "s"}'))["ticket"].startswith("T-")
    assert [x["summary"] for x in _lines(secret_file)] == ["s"]
    monkeypatch.delenv(TICKETS_ENV)
    with pytest.raises(ConfigError, match=TICKETS_ENV):
        tools["open_ticket"].invoke('{"summary": "s"}')


def test_a_failing_server_raises_infrastructure_error() -> None:
    dying = MCPServer(command=(sys.executable, "-c", "import sys; sys.stderr.write('boom'); 1/0"))
    with pytest.raises(InfrastructureError, match="boom"):
        mcp_tools(dying)
    with pytest.raises(InfrastructureError, match="no-such-mcp-server"):
        mcp_tools(MCPServer(command=("no-such-mcp-server",)))


def test_missing_extra_is_a_config_error(
    listed: list[Tool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(ConfigError, match=r"pip install 'streaming-agents\[mcp\]'"):
        mcp_tools(MCPServer(command=("anything",)))
    with pytest.raises(ConfigError, match="streaming-agents"):
        _by_name(listed)["lookup_policy"].invoke('{"policy_id": "P-100"}')


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tickets = tmp_path / "http-tickets.jsonl"
    cmd = [sys.executable, "-m", SERVER_MODULE, "--http", str(port), "--tickets", str(tickets)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the HTTP MCP server died"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP MCP server never listened"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp", tickets
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_streamable_http_server(http_server: tuple[str, Path]) -> None:
    url, tickets = http_server
    tools = _by_name(cloudpickle.loads(cloudpickle.dumps(mcp_tools(MCPServer(url=url)))))
    assert tools["open_ticket"].side_effecting and not tools["lookup_policy"].side_effecting
    assert json.loads(tools["lookup_policy"].invoke('{"policy_id": "P-100"}')) == POLICIES["P-100"]
    tools["open_ticket"].invoke('{"summary": "over http"}')
    assert [x["summary"] for x in _lines(tickets)] == ["over http"]


def _script(fake_llm: FakeLLM, keys: list[str]) -> None:
    """Each key's event: call lookup_policy and open_ticket, then answer (the echo)."""
    rules = [
        {
            "match": f"^{k}#",
            "tool_calls": [
                {"name": "lookup_policy", "arguments": {"policy_id": "P-100"}},
                {"name": "open_ticket", "arguments": {"summary": f"claim of {k}"}},
            ],
        }
        for k in keys
    ]
    fake_llm.configure({"rules": rules})


def test_agent_runs_mcp_tools_on_the_mini_cluster(fake_llm: FakeLLM, tmp_path: Path) -> None:
    keys = ["a", "b", "c"]
    _script(fake_llm, keys)
    tickets = tmp_path / "tickets.jsonl"
    agent = echo_agent(fake_llm, name="mcp", tools=tuple(mcp_tools(_stdio(tickets))))
    outputs, dead = run_collect(agent, [json.dumps({"k": k, "seq": 0}) for k in keys])
    assert dead == []
    assert sorted(o["key"] for o in outputs) == keys
    for out in outputs:  # the answer came after both tool results (4 messages)
        assert out["output"] == f"echo[n=4]: {out['key']}#0"
        assert out["usage"]["llm_calls"] == 2
    assert sorted(x["summary"] for x in _lines(tickets)) == [f"claim of {k}" for k in keys]
    tool_msgs = [
        json.loads(m["content"])
        for r in fake_llm.requests(last=20)
        for m in r["messages"]
        if m["role"] == "tool"
    ]
    assert POLICIES["P-100"] in tool_msgs
    assert {m["summary"] for m in tool_msgs if "ticket" in m} == {f"claim of {k}" for k in keys}


def test_replays_and_fenced_runs_do_not_repeat_mcp_side_effects(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    _script(fake_llm, ["a"])
    tickets = tmp_path / "tickets.jsonl"
    agent = echo_agent(fake_llm, name="mcp-replay", tools=tuple(mcp_tools(_stdio(tickets))))
    journal = SqliteJournal(tmp_path / "j.sqlite")
    first, runner = run_events(agent, [{"k": "a", "seq": 0}], journal=journal)
    assert runner.stats.tool_calls == 2 and len(_lines(tickets)) == 1
    again, runner = run_events(agent, [{"k": "a", "seq": 0}], journal=journal)
    assert runner.stats.tool_calls == 0 and runner.stats.journal_hits == 4
    assert len(_lines(tickets)) == 1, "the replay answered the MCP call from the journal"
    fresh = echo_agent(fake_llm, name="mcp-shadow", tools=agent.tools)
    _, runner = run_events(fresh, [{"k": "a", "seq": 0}], fence_side_effects=True)
    assert runner.stats.tool_calls == 1 and runner.stats.tools_fenced == 1  # lookup ran
    assert len(_lines(tickets)) == 1, "open_ticket was fenced"
    outs = [[c.outputs for c in done["a"]] for done in (first, again)]
    assert outs[0] == outs[1]


def test_a_server_gone_after_listing_dead_letters_the_event_as_tool_failed(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    _script(fake_llm, ["a"])
    listed = mcp_tools(_stdio(tmp_path / "tickets.jsonl"))
    gone = MCPServer(command=("no-such-mcp-server",))
    tools = tuple(dataclasses.replace(t, fn=dataclasses.replace(t.fn, server=gone)) for t in listed)
    agent = echo_agent(fake_llm, name="mcp-gone", tools=tools)
    done, runner = run_events(agent, [{"k": "a", "seq": 0}])
    [completion] = done["a"]
    assert completion.outputs == () and completion.dead_letter is not None
    record = json.loads(completion.dead_letter)
    assert record["reason"] == "tool failed", record
    assert "no-such-mcp-server" in record["error"]
    assert runner.stats.dead_lettered == 1
