"""MCP tools: a Model Context Protocol server's tools as ordinary agent tools.

Needs ``pip install 'streaming-agents[mcp]'``::

    server = MCPServer(command=("python", "-m", "my_mcp_server"), env_names=("CRM_TOKEN",))
    agent = Agent(..., tools=(*mcp_tools(server), my_local_tool))

``mcp_tools`` lists the server's tools once, when the job is built.  Each tool
sends the model the server's description and ``inputSchema``; arguments are
checked against that schema first, invalid ones reported to the model.

* Picklable: a tool holds only plain data (the server's address, names of the
  environment variables with its secrets, the tool's metadata), so it survives
  cloudpickle into Flink workers.  ``mcp`` is imported lazily.
* One session per call (stdio: one server process per call), on an event loop
  and thread of its own: slower than a pooled session, but nothing is left half-open by a
  worker restart, a dead server or a cancelled event.
* Unsafe by default: a tool is side-effecting unless the server annotates it
  ``readOnlyHint: true`` (MCP ``ToolAnnotations``); ``side_effecting=`` overrides.
* mcp 1.x (>= 1.24) and 2.x: 2.x renamed the protocol models' fields to snake_case
  (``input_schema``, ``is_error``...) and moved the HTTP client to ``httpx2``;
  :func:`_field` reads either spelling, :func:`_http_client_module` picks the client.
* Recovery: results are journalled like any tool's, so a replay answers a
  recorded call from the journal without calling the server, and side-effecting
  MCP tools are fenced in replays and shadow runs.  An error the tool reports
  (``isError``) is its result (``{"error": ...}``); an unreachable or broken
  server raises :class:`~streaming_agents.errors.InfrastructureError`, so the
  event is dead-lettered with nothing journalled and reprocessing calls again.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from pydantic import BaseModel, ConfigDict

from streaming_agents.errors import ConfigError, InfrastructureError
from streaming_agents.secret_refs import check_secret_ref, resolve_secret
from streaming_agents.tools import Tool

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult
    from mcp.types import Tool as RemoteTool

__all__ = ["INSTALL_HINT", "MCPArguments", "MCPServer", "MCPTool", "mcp_tools"]

INSTALL_HINT = "pip install 'streaming-agents[mcp]'"
T = TypeVar("T")


@dataclass(frozen=True)
class MCPServer:
    """A stdio ``command`` to spawn or a streamable-HTTP ``url``.

    ``env_names``: variables the spawned server gets from the worker's
    environment; ``secrets``: variables it gets from references
    (``{"CRM_TOKEN": "file:/run/secrets/crm"}``, :mod:`streaming_agents.secret_refs`),
    read when it is spawned.  The server's environment is exactly these: it
    sees no other secret of the worker.  ``bearer_token_env`` /
    ``bearer_token_ref``: the HTTP server's token, by variable name or reference.
    """

    command: tuple[str, ...] = ()
    url: str | None = None
    env_names: tuple[str, ...] = ()
    bearer_token_env: str | None = None
    timeout_s: float = 60.0
    secrets: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    bearer_token_ref: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env_names", tuple(self.env_names))
        pairs = self.secrets.items() if isinstance(self.secrets, Mapping) else self.secrets
        refs = tuple((str(n), check_secret_ref(r, f"MCP secret {n!r}")) for n, r in pairs)
        object.__setattr__(self, "secrets", refs)
        if self.bearer_token_env and self.bearer_token_ref:
            raise ConfigError("MCPServer: bearer_token_env or bearer_token_ref, not both")
        if self.bearer_token_ref:
            check_secret_ref(self.bearer_token_ref, "MCPServer.bearer_token_ref")
        if bool(self.command) == (self.url is not None):
            raise ConfigError("MCPServer needs exactly one of command (stdio) or url (HTTP)")
        if self.timeout_s <= 0:
            raise ConfigError("MCPServer.timeout_s must be > 0")

    def describe(self) -> str:
        return self.url or " ".join(self.command)

    def secret_refs(self) -> tuple[tuple[str, str], ...]:
        """``(variable, reference)`` pairs (``secrets`` is stored as pairs, hashable)."""
        pairs = self.secrets.items() if isinstance(self.secrets, Mapping) else self.secrets
        return tuple(pairs)


class MCPArguments(BaseModel):
    model_config = ConfigDict(extra="allow")  # pass-through: the call checks the server's schema


@dataclass(frozen=True)
class MCPTool(Tool):
    """A :class:`Tool` whose declaration is the MCP server's (``input_schema_json``)."""

    input_schema_json: str = '{"type": "object"}'

    def schema(self) -> dict[str, Any]:
        declared = super().schema()
        declared["function"]["parameters"] = json.loads(self.input_schema_json)
        return declared


@dataclass(frozen=True)
class _RemoteCall:
    """The tool function: validate against the server's schema, call the server."""

    server: MCPServer
    tool_name: str
    input_schema_json: str

    def __call__(self, **arguments: Any) -> Any:
        _require_mcp()
        from jsonschema.validators import validator_for

        schema = json.loads(self.input_schema_json)
        if errors := sorted(validator_for(schema)(schema).iter_errors(arguments), key=str):
            found = [{"loc": list(e.absolute_path), "msg": e.message} for e in errors]
            return {"error": f"invalid arguments: {found}"}
        call = _with_session(self.server, lambda s: s.call_tool(self.tool_name, arguments))
        return _result_data(_run(call))


def mcp_tools(
    server: MCPServer,
    *,
    side_effecting: bool | Collection[str] | None = None,
    include: Collection[str] | None = None,
) -> list[Tool]:
    """The server's tools, listed now (at job-build time), as agent tools; ``include``: only these.

    ``side_effecting``: ``None`` -- side-effecting unless annotated ``readOnlyHint``;
    ``True``/``False`` -- all tools; a set of names -- exactly those, the others read-only.
    """
    _require_mcp()
    if isinstance(side_effecting, str) or isinstance(include, str):
        raise ConfigError("side_effecting and include take a set of tool names, not a string")
    listed = _run(_with_session(server, _list_tools))
    names = {t.name for t in listed}
    for label, wanted in (("include", include), ("side_effecting", side_effecting)):
        unknown = set(wanted) - names if isinstance(wanted, Collection) else set()
        if unknown:
            raise ConfigError(f"{label}: {server.describe()} has no tool {sorted(unknown)}")
    tools: list[Tool] = []
    for remote in listed:
        if include is not None and remote.name not in include:
            continue
        schema_json = json.dumps(_field(remote, "input_schema", "inputSchema"), sort_keys=True)
        if side_effecting is None:  # the server's hint; no hint = side-effecting
            hints = remote.annotations
            effect = not (hints and _field(hints, "read_only_hint", "readOnlyHint") is True)
        else:
            effect = side_effecting is True or remote.name in (side_effecting or ())
        tools.append(
            MCPTool(
                name=remote.name,
                description=remote.description or remote.title or "",
                args_model=MCPArguments,
                fn=_RemoteCall(server, remote.name, schema_json),
                side_effecting=effect,
                input_schema_json=schema_json,
            )
        )
    return tools


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"MCP tools need the mcp package: {INSTALL_HINT}") from exc


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own, in a thread of its own: never in a running loop."""
    with ThreadPoolExecutor(1, thread_name_prefix="mcp-call") as pool:
        return pool.submit(asyncio.run, coro).result()


async def _list_tools(session: ClientSession) -> list[RemoteTool]:
    from mcp.types import PaginatedRequestParams

    page = await session.list_tools()
    tools = list(page.tools)
    while cursor := _field(page, "next_cursor", "nextCursor"):
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
        tools.extend(page.tools)
    return tools


def _field(model: Any, name: str, v1_name: str) -> Any:
    """A protocol model's field: mcp 2.x spells it ``name``, mcp 1.x ``v1_name``."""
    return getattr(model, name) if hasattr(model, name) else getattr(model, v1_name, None)


def _http_client_module() -> Any:
    """The HTTP client package the installed mcp takes: ``httpx2`` for mcp 2.x, else ``httpx``."""
    from importlib.metadata import version

    if int(version("mcp").split(".")[0]) >= 2:
        return importlib.import_module("httpx2")
    return importlib.import_module("httpx")


async def _with_session(server: MCPServer, action: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Open a session, run ``action`` on it, close it; failures -> InfrastructureError."""
    import anyio
    from mcp import ClientSession

    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        try:
            with anyio.fail_after(server.timeout_s):
                async with AsyncExitStack() as stack:
                    read, write = await _open_transport(server, stack, errlog)
                    session = await stack.enter_async_context(ClientSession(read, write))
                    await session.initialize()
                    return await action(session)
        except ConfigError:
            raise
        except Exception as exc:
            errlog.seek(0)
            stderr = errlog.read()[-1500:].strip()
            detail = "; ".join(_leaves(exc)) + (f"; server stderr: {stderr}" if stderr else "")
            raise InfrastructureError(f"MCP server {server.describe()} failed: {detail}") from exc


async def _open_transport(server: MCPServer, stack: AsyncExitStack, errlog: TextIO) -> Any:
    if server.url is None:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        if missing := [n for n in server.env_names if n not in os.environ]:
            raise ConfigError(f"MCP server {server.describe()}: {missing} not set in the worker")
        env = {n: os.environ[n] for n in server.env_names}
        env.update({n: resolve_secret(ref) for n, ref in server.secret_refs()})
        params = StdioServerParameters(
            command=server.command[0], args=list(server.command[1:]), env=env
        )
        return await stack.enter_async_context(stdio_client(params, errlog=errlog))
    from mcp.client.streamable_http import streamable_http_client

    headers: dict[str, str] = {}
    if server.bearer_token_env:
        token = os.environ.get(server.bearer_token_env)
        if not token:
            raise ConfigError(f"MCP server {server.url}: {server.bearer_token_env} is not set")
        headers["Authorization"] = f"Bearer {token}"
    elif server.bearer_token_ref:
        headers["Authorization"] = f"Bearer {resolve_secret(server.bearer_token_ref)}"
    client = _http_client_module().AsyncClient(headers=headers, timeout=server.timeout_s)
    http = await stack.enter_async_context(client)
    streams = await stack.enter_async_context(streamable_http_client(server.url, http_client=http))
    return streams[:2]


def _leaves(exc: BaseException) -> list[str]:  # unpacks anyio's exception groups
    if isinstance(exc, BaseExceptionGroup):
        return [m for sub in exc.exceptions for m in _leaves(sub)]
    return [f"{type(exc).__name__}: {exc}"]


def _result_data(result: CallToolResult) -> Any:
    """JSON-able data of a tool result: structured content if any, else the content blocks."""
    from mcp.types import TextContent

    parts = [
        b.text if isinstance(b, TextContent) else b.model_dump(mode="json", exclude_none=True)
        for b in result.content
    ]
    if _field(result, "is_error", "isError"):
        return {"error": " ".join(str(p) for p in parts) or "the MCP tool failed"}
    structured = _field(result, "structured_content", "structuredContent")
    if structured is not None:
        return structured
    return parts[0] if len(parts) == 1 else parts
