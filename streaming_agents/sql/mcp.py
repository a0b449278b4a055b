"""MCP tools in SQL: an MCP server's connection plus ``CREATE TOOL ... USING CONNECTION``.

The connection names the server: ``'endpoint'`` (streamable HTTP, Confluent's
``'transport-type' = 'STREAMABLE_HTTP'``) or, for a local server, ``'command'``
(stdio; split like a shell would).  Secrets by reference only: ``'token_env'``
(or ``'api_key_env'``) names the environment variable holding the bearer
token, ``'env'`` the variables a spawned server gets; a literal ``'token'`` /
``'api-key'`` is refused by the catalog.  The tool's options:
``'allowed_tools'`` (comma list; default all the server's tools),
``'request_timeout'`` (seconds), ``'side_effecting'`` (``true``/``false``/a
comma list; default: the server's ``readOnlyHint`` annotations).

The tools are :func:`streaming_agents.mcp_tools.mcp_tools` -- listed once,
when the statement runs, journalled like any tool in the agent operator.
"""

from __future__ import annotations

import shlex

from streaming_agents.errors import ConfigError
from streaming_agents.tools import Tool

__all__ = ["mcp_tool_set"]

_HTTP = ("streamable_http", "http", "")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _side_effecting(text: str | None) -> bool | set[str] | None:
    if text is None:
        return None
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    return set(_names(text))


def mcp_tool_set(connection: dict[str, str], options: dict[str, str]) -> tuple[Tool, ...]:
    """The server's tools (``allowed_tools`` only) as agent tools."""
    from streaming_agents.mcp_tools import MCPServer, mcp_tools

    transport = connection.get("transport_type", "").strip().lower()
    endpoint = connection.get("endpoint") or connection.get("api_base")
    command = connection.get("command")
    if transport not in (*_HTTP, "stdio"):
        raise ConfigError(f"'transport-type' {transport!r}: use STREAMABLE_HTTP or STDIO")
    timeout = options.get("request_timeout") or connection.get("request_timeout") or "60"
    try:
        timeout_s = float(timeout)
    except ValueError:
        raise ConfigError(f"'request_timeout' must be seconds, got {timeout!r}") from None
    token_env = connection.get("token_env") or connection.get("api_key_env")
    if command:
        server = MCPServer(
            command=tuple(shlex.split(command)),
            env_names=tuple(_names(connection.get("env", ""))),
            timeout_s=timeout_s,
        )
    elif endpoint:
        server = MCPServer(url=endpoint, bearer_token_env=token_env, timeout_s=timeout_s)
    else:
        raise ConfigError("an MCP connection needs 'endpoint' (HTTP) or 'command' (stdio)")
    allowed = _names(options.get("allowed_tools", ""))
    tools = mcp_tools(
        server,
        side_effecting=_side_effecting(options.get("side_effecting")),
        include=set(allowed) if allowed else None,
    )
    return tuple(tools)
