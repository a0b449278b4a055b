"""Per-agent secrets: each agent's model key for its own calls only; tools see what they declare.

* Two agents in one Flink job (mini-cluster), each with its model key in a
  secret file of its own (``api_key_ref="file:..."``; neither key is in any
  environment), one calling in-process, the other through a call-worker
  process: the fake LLM, over real HTTP, sees every call of agent A with A's
  key and every call of agent B with B's key, nothing else.  Agent A's tool
  reads the secret it declared; another of its tools, reaching for a secret it
  did not declare, fails and its event is dead-lettered.  The pickled operators
  (what the job graph carries), the journal, outputs, dead letters and
  PyFlink's logs hold neither key nor tool secret.  (The whole temp folder is
  searched by ``tests/test_secrets.py``; walking it costs ~17 s on a busy machine.)
* Units: how a tool declares secrets, what an agent binds, what a tool can
  read, and that a reference is never the secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from agent_support import events

from streaming_agents import Agent, LLMRequest, LLMResult, ModelSpec, SqliteJournal
from streaming_agents.chaos.secrets import find_bytes, find_files
from streaming_agents.errors import ConfigError
from streaming_agents.llm.litellm_client import (
    API_KEY_REF_ARG,
    Attempt,
    LiteLLMClient,
    take_worker_key,
)
from streaming_agents.llm.throttle import AdaptiveLimiter
from streaming_agents.secret_refs import ToolSecrets, resolve_secret
from streaming_agents.testing.cluster import flink_home
from streaming_agents.testing.fake_llm import FakeLLM
from streaming_agents.tools import Tool, tool

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@tool(secrets=("crm",))
def crm_lookup(customer: str, secrets: ToolSecrets) -> dict[str, Any]:
    """Look a customer up in the CRM (proves it holds the CRM token by its digest)."""
    token = secrets["crm"]
    return {"customer": customer, "token_sha": hashlib.sha256(token.encode()).hexdigest()[:16]}


@tool(secrets=("crm",))
def nosy(customer: str, secrets: ToolSecrets) -> dict[str, Any]:
    """A tool that reaches for a secret it did not declare."""
    return {"billing": secrets["billing"]}


def write_secret(folder: Path, name: str, value: str) -> str:
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return f"file:{path}"


def secret_files(tmp_path: Path, tag: str) -> tuple[dict[str, str], dict[str, str]]:
    """(name -> secret, name -> reference) for both agents' keys and agent A's tool secrets."""
    values = {
        "key a": f"sk-A-LEAKCHECK-{tag}",
        "key b": f"sk-B-LEAKCHECK-{tag}",
        "crm": f"crm-LEAKCHECK-{tag}",
        "billing": f"bill-LEAKCHECK-{tag}",
    }
    refs = {
        n: write_secret(tmp_path / "secrets", n.replace(" ", "_"), v) for n, v in values.items()
    }
    return values, refs


def two_agents(fake_llm: FakeLLM, refs: dict[str, str]) -> tuple[Agent[Any], Agent[Any]]:
    def model(name: str, ref: str) -> ModelSpec:
        return ModelSpec(model=f"openai/{name}", api_base=fake_llm.base_url, api_key_ref=ref)

    agent_a = Agent(
        name="agent-a",
        version="1",
        model=model("agent-a", refs["key a"]),
        prompt="A {k}#{seq}",
        tools=(crm_lookup, nosy),
        secrets={"crm": refs["crm"], "billing": refs["billing"]},
    )
    agent_b = Agent(name="agent-b", version="1", model=model("agent-b", refs["key b"]),
                    prompt="B {k}#{seq}")  # fmt: skip
    return agent_a, agent_b


TOOL_RULES = [
    {"match": "^A k0#0$", "tool_calls": [{"name": "crm_lookup", "arguments": {"customer": "ada"}}]},
    {"match": "^A k1#0$", "tool_calls": [{"name": "nosy", "arguments": {"customer": "bob"}}]},
]


def run_two_agents(
    agent_a: Agent[Any], agent_b: Agent[Any], raw: list[str], journal: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[bytes]]:
    """Both agents on one keyed stream in one job; (outputs, dead letters, pickled operators)."""
    from pyflink.common import Types

    from streaming_agents import dead_letters, run_agent
    from streaming_agents.runtime.environment import local_env
    from streaming_agents.runtime.keys import json_key

    env = local_env(checkpoint_interval_ms=None)
    keyed = env.from_collection(raw, type_info=Types.STRING()).key_by(
        json_key("k"), key_type=Types.STRING()
    )
    streams = [
        run_agent(keyed, agent_a, journal=SqliteJournal(journal)),
        run_agent(keyed, agent_b, journal=SqliteJournal(journal), llm_processes=1),
    ]
    tagged = [s.map(lambda v: "OUT " + v, output_type=Types.STRING()) for s in streams]
    tagged += [
        dead_letters(s).map(lambda v: "DLQ " + v, output_type=Types.STRING()) for s in streams
    ]
    lines = list(tagged[0].union(*tagged[1:]).execute_and_collect())
    outputs = [json.loads(line[4:]) for line in lines if line.startswith("OUT ")]
    dead = [json.loads(line[4:]) for line in lines if line.startswith("DLQ ")]
    # What the job graph carries of each agent: its operator function, pickled.
    from streaming_agents.runtime.operator import AgentFunction

    pickled = [
        cloudpickle.dumps(AgentFunction(a, SqliteJournal(journal))) for a in (agent_a, agent_b)
    ]
    return outputs, dead, pickled


def test_two_agents_in_one_job_each_call_with_their_own_key(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    tag = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    values, refs = secret_files(tmp_path, tag)
    fake_llm.configure({"rules": TOOL_RULES})
    agent_a, agent_b = two_agents(fake_llm, refs)
    raw = events(3, 2)
    started_wall = time.time()
    journal = tmp_path / "journal.sqlite"
    outputs, dead, pickled = run_two_agents(agent_a, agent_b, raw, journal)

    by_agent = {name: [o for o in outputs if o["agent"] == name] for name in ("agent-a", "agent-b")}
    assert len(by_agent["agent-b"]) == len(raw), dead
    assert len(by_agent["agent-a"]) == len(raw) - 1  # k1#0: its tool reached for "billing"
    (refused,) = dead
    assert refused["agent"] == "agent-a" and refused["payload"]["k"] == "k1", refused
    assert "did not declare secret 'billing'" in refused["error"], refused
    # The declared tool read its own secret (the digest went back to the model).
    sent_tools = [
        m for r in fake_llm.requests(last=50) for m in r["messages"] if m["role"] == "tool"
    ]
    crm_sha = hashlib.sha256(values["crm"].encode()).hexdigest()[:16]
    assert any(json.loads(m["content"]).get("token_sha") == crm_sha for m in sent_tools)

    seen = {(row["authorization"], row["model"]): row["count"] for row in fake_llm.authorizations()}
    # Agent A: one call per event, plus the call after crm_lookup's result (k1#0 stops at nosy).
    assert seen == {
        (f"Bearer {values['key a']}", "agent-a"): len(raw) + 1,
        (f"Bearer {values['key b']}", "agent-b"): len(raw),
    }, seen

    # Secrets scan: keys and tool secrets nowhere but in their files.
    probes = {"journal probe": "A k0#0"}
    hits = find_files([journal.parent / "journal.sqlite"], {**values, **probes})[0]
    hits += find_files([flink_home() / "log"], values, started_wall)[0]
    for i, blob in enumerate(pickled):
        hits += find_bytes(f"pickled operator {i}", blob, {**values, "reference": refs["key a"]})
    for doc in outputs + dead:
        hits += find_bytes("record", json.dumps(doc).encode(), values)
    leaks = sorted({(h.name, h.where) for h in hits if h.name in values})
    assert not leaks, f"secrets found (name, where): {leaks}"
    found = {(h.name, h.where) for h in hits}
    assert any(n == "journal probe" for n, _ in found), found  # the journal scan saw content
    assert ("reference", "pickled operator 0") in found, found  # the graph holds the reference


# --------------------------------------------------------------------------- units


def test_a_tool_gets_only_the_secrets_it_declared(tmp_path: Path) -> None:
    values, refs = secret_files(tmp_path, "unit")
    agent = Agent(
        name="a",
        version="1",
        model=ModelSpec(model="openai/x", api_key_ref=refs["key a"]),
        tools=(crm_lookup, nosy),
        secrets={"crm": refs["crm"], "billing": refs["billing"]},
    )
    bound = agent.tool("crm_lookup")
    assert bound is not None and bound.secret_refs == (("crm", refs["crm"]),)
    crm_sha = hashlib.sha256(values["crm"].encode()).hexdigest()[:16]
    assert json.loads(bound.invoke('{"customer": "ada"}'))["token_sha"] == crm_sha
    # The model sees no secrets parameter.
    assert set(bound.schema()["function"]["parameters"]["properties"]) == {"customer"}
    peeker = agent.tool("nosy")
    assert peeker is not None
    with pytest.raises(ConfigError, match="did not declare secret 'billing'") as caught:
        peeker.invoke('{"customer": "bob"}')
    assert values["billing"] not in str(caught.value)
    view = ToolSecrets("nosy", dict(peeker.secret_refs))
    assert "billing" not in view and list(view) == ["crm"]
    assert values["crm"] not in repr(view) and values["crm"] not in str(cloudpickle.dumps(view))
    for blob in (cloudpickle.dumps(agent), cloudpickle.dumps(bound)):
        assert not any(v.encode() in blob for v in values.values())


def test_a_tool_whose_secret_its_agent_does_not_map_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs secret"):
        Agent(name="a", version="1", model=ModelSpec(model="openai/x"), tools=(crm_lookup,))
    with pytest.raises(ConfigError, match="no ToolSecrets parameter"):

        @tool(secrets=("crm",))
        def no_param(x: str) -> str:
            """Declares a secret it cannot receive."""
            return x


def test_a_pasted_key_is_refused_without_being_echoed() -> None:
    pasted = "sk-proj-Abc123-pasted"
    for build in (
        lambda: ModelSpec(model="openai/x", api_key_ref=pasted),
        lambda: Agent(
            name="a", version="1", model=ModelSpec(model="openai/x"), secrets={"crm": pasted}
        ),
    ):
        with pytest.raises(Exception, match="never the secret itself") as caught:
            build()
        assert pasted not in str(caught.value)
    with pytest.raises(ConfigError, match="not both"):
        ModelSpec(model="openai/x", api_key_env="K", api_key_ref="env:K")
    with pytest.raises(ConfigError, match="absolute path"):
        ModelSpec(model="openai/x", api_key_ref="file:relative/key")


def test_references_resolve_at_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = write_secret(tmp_path, "k", "first")
    assert resolve_secret(ref) == "first"
    Path(ref[5:]).write_text("rotated\n")
    assert resolve_secret(ref) == "rotated"  # read at each use: rotation needs no restart
    monkeypatch.setenv("SA_TEST_SECRET", "from-env")
    assert resolve_secret("env:SA_TEST_SECRET") == resolve_secret("SA_TEST_SECRET") == "from-env"
    with pytest.raises(ConfigError, match="cannot be read"):
        resolve_secret(f"file:{tmp_path}/missing")


def test_a_call_worker_gets_the_reference_never_the_key(tmp_path: Path) -> None:
    """What crosses the pipe to a call worker is the reference; the worker reads the file."""
    values, refs = secret_files(tmp_path, "pipe")
    spec = ModelSpec(model="openai/agent-a", api_key_ref=refs["key a"])
    sent: list[dict[str, Any]] = []

    async def spy(kwargs: dict[str, Any]) -> Attempt:
        sent.append(dict(kwargs))
        return Attempt("ok", result=LLMResult(content="ok"))

    client = LiteLLMClient(spec, AdaptiveLimiter(4), transport=spy, remote_key=True)
    asyncio.run(client.complete(LLMRequest(messages=({"role": "user", "content": "hi"},))))
    assert sent[0][API_KEY_REF_ARG] == refs["key a"] and "api_key" not in sent[0]
    assert values["key a"] not in json.dumps(sent[0])
    take_worker_key(sent[0])  # what the worker does with it
    assert sent[0]["api_key"] == values["key a"] and API_KEY_REF_ARG not in sent[0]


def test_an_mcp_server_holds_references_only(tmp_path: Path) -> None:
    from streaming_agents.mcp_tools import MCPServer

    values, refs = secret_files(tmp_path, "mcp")
    server = MCPServer(command=("crm-mcp",), secrets={"CRM_TOKEN": refs["crm"]})
    assert server.secret_refs() == (("CRM_TOKEN", refs["crm"]),)
    assert values["crm"].encode() not in cloudpickle.dumps(server)
    hash(server)  # still a frozen, hashable value
    with pytest.raises(ConfigError, match="never the secret itself") as caught:
        MCPServer(url="http://x", bearer_token_ref="tok-en:123/pasted")
    assert "pasted" not in str(caught.value)


def test_tools_without_secrets_are_unchanged() -> None:
    @tool
    def plain(x: int) -> int:
        """Double."""
        return 2 * x

    assert isinstance(plain, Tool) and plain.secrets == () and plain.secrets_param is None
    assert plain.invoke('{"x": 2}') == "4"
