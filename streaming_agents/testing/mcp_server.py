"""A tiny MCP server for tests and demos (needs the ``mcp`` extra).

Run it over stdio (what :class:`streaming_agents.mcp_tools.MCPServer` spawns)::

    python -m streaming_agents.testing.mcp_server --tickets /tmp/tickets.jsonl

or over streamable HTTP with ``--http PORT`` (served at ``/mcp``).  Two
deterministic tools: ``lookup_policy`` (annotated read-only) and
``open_ticket`` (side-effecting: appends one JSON line per ticket to the file
named by ``--tickets`` or ``$SA_MCP_TICKETS``, so a test can count the side
effects that really happened).  Runs on mcp 1.x (``FastMCP``) and 2.x (``MCPServer``,
which takes the HTTP host and port when it runs).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, TypeVar

from mcp.types import ToolAnnotations

MCP_2 = int(version("mcp").split(".")[0]) >= 2
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["POLICIES", "TICKETS_ENV", "build_server", "main"]

TICKETS_ENV = "SA_MCP_TICKETS"
POLICIES: dict[str, dict[str, Any]] = {
    "P-100": {"policy_id": "P-100", "holder": "ada", "coverage": "home", "deductible": 500},
    "P-200": {"policy_id": "P-200", "holder": "bob", "coverage": "car", "deductible": 250},
}


def _sdk(v2_module: str, v1_module: str, name: str) -> Any:
    """``name`` from the mcp 2.x module or, on mcp 1.x, from the 1.x one."""
    return getattr(importlib.import_module(v2_module if MCP_2 else v1_module), name)


def _tool_error() -> type[Exception]:
    error: type[Exception] = _sdk(
        "mcp.server.mcpserver.exceptions", "mcp.server.fastmcp.exceptions", "ToolError"
    )
    return error


def build_server(tickets: str | None, *, port: int = 8000) -> Any:
    """The server with its two tools; ``tickets`` is the side-effect file."""
    if MCP_2:
        server: Any = _sdk("mcp.server.mcpserver", "", "MCPServer")(
            "streaming-agents-test", log_level="WARNING"
        )
    else:
        server = _sdk("", "mcp.server.fastmcp", "FastMCP")(
            "streaming-agents-test", host="127.0.0.1", port=port, log_level="WARNING"
        )
    tool: Callable[..., Callable[[F], F]] = server.tool

    # by its wire name: mcp 1.x calls the field readOnlyHint, mcp 2.x read_only_hint
    @tool(annotations=ToolAnnotations.model_validate({"readOnlyHint": True}))
    def lookup_policy(policy_id: str) -> dict[str, Any]:
        """Look up an insurance policy by its id."""
        if policy_id not in POLICIES:  # an anticipated failure: its text reaches the model
            raise _tool_error()(f"no policy {policy_id!r}")
        return POLICIES[policy_id]

    @tool()
    def open_ticket(summary: str, priority: int = 1) -> dict[str, Any]:
        """Open a support ticket; every call files a new one."""
        ticket = "T-" + hashlib.sha256(summary.encode()).hexdigest()[:8]
        path = tickets or os.environ.get(TICKETS_ENV)
        if not path:
            raise ValueError(f"no ticket file: pass --tickets or set {TICKETS_ENV}")
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"ticket": ticket, "summary": summary}) + "\n")
        return {"ticket": ticket, "summary": summary, "priority": priority}

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tickets", help=f"side-effect file (default: ${TICKETS_ENV})")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP")
    args = parser.parse_args(argv)
    server = build_server(args.tickets, port=args.http or 8000)
    if not args.http:
        server.run(transport="stdio")
    elif MCP_2:
        server.run(transport="streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run(transport="streamable-http")


if __name__ == "__main__":
    main()
