"""Secrets by reference: named where they are defined, read where and when they are used.

An agent's model key and the secrets its tools need are given as *references*,
never as values, so what is pickled into the job graph, checkpointed, logged
or journalled is the reference only.  A reference is one of:

* ``file:/path`` -- the whole file, one secret per file (a trailing line break
  is dropped), as Kubernetes and Docker mount secrets: give each agent its own
  file and only that agent's definition names it;
* ``env:NAME`` or a bare ``NAME`` -- an environment variable of the worker;
* ``${env:NAME}`` or ``${file:/path:key}`` -- the Kafka config-provider form
  (:class:`~streaming_agents.connectors.security.SecretRef`), a key of a
  properties file.

:func:`resolve_secret` reads the secret at the moment of use (every LLM call,
every tool call), so a rotated file is picked up without a restart and
nothing caches the value.  Errors name the reference, never the secret, and
text that is not a reference is refused without being echoed (it may be a
pasted key).

:class:`ToolSecrets` is what a tool receives: the secrets it declared
(``@tool(secrets=("crm_token",))``), looked up in its agent's
``Agent.secrets`` (name -> reference); any other name is refused.  This is the
runtime's contract, not a sandbox: Python code in a TaskManager runs as the
TaskManager's OS user and can read whatever that user can, so keep keys out of
the TaskManager's environment (``file:`` references, files readable by that
user only) and give a tool that must not see them a process of its own (an MCP
server, which gets only the secrets its :class:`~streaming_agents.mcp_tools.MCPServer`
declares).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from streaming_agents.errors import ConfigError

__all__ = ["ToolSecrets", "check_secret_ref", "resolve_secret", "secret_visible"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROVIDER_FORM = re.compile(r"\$\{(env|file):[^}]*\}")


def check_secret_ref(ref: str, what: str = "secret reference") -> str:
    """``ref`` if it is a well-formed reference; a ConfigError (not echoing it) otherwise."""
    text = ref.strip()
    if text.startswith("file:"):
        if not Path(text[5:]).is_absolute():
            raise ConfigError(f"{what}: file: needs an absolute path, e.g. file:/run/secrets/key")
        return text
    if text.startswith("env:"):
        text = text[4:]
    if _ENV_NAME.fullmatch(text):
        return ref.strip()
    if _PROVIDER_FORM.fullmatch(text):
        _provider_ref(text, what)
        return text
    raise ConfigError(
        f"{what} must be a reference (file:/path, env:NAME, a variable name, ${{env:NAME}} "
        "or ${file:/path:key}), never the secret itself"
    )


def _provider_ref(text: str, what: str) -> object:
    from streaming_agents.connectors.security import SecretRef

    return SecretRef.parse(text, what)


def resolve_secret(ref: str) -> str:
    """The secret ``ref`` names, read now (see the module doc for the forms)."""
    text = check_secret_ref(ref)
    if text.startswith("file:"):
        path = Path(text[5:])
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"secret file {path} cannot be read: {exc.strerror}") from None
        value = value.removesuffix("\n").removesuffix("\r")
        if not value:
            raise ConfigError(f"secret file {path} is empty")
        return value
    if text.startswith("${"):
        from streaming_agents.connectors.security import SecretRef

        return SecretRef.parse(text).resolve()
    name = text.removeprefix("env:")
    found = os.environ.get(name)
    if found is None:
        raise ConfigError(f"environment variable {name} (a secret) is not set")
    return found


def secret_visible(ref: str) -> bool:
    """Whether this process could read ``ref`` (without reading it)."""
    text = check_secret_ref(ref)
    if text.startswith("file:"):
        return os.access(text[5:], os.R_OK)
    if text.startswith("${"):
        from streaming_agents.connectors.security import SecretRef

        return SecretRef.parse(text).visible()
    return text.removeprefix("env:") in os.environ


class ToolSecrets(Mapping[str, str]):
    """The secrets one tool declared, resolved on access; other names are refused.

    Holds references only (its ``repr`` lists the names), so it can be
    logged or pickled without giving anything away.
    """

    def __init__(self, tool: str, refs: Mapping[str, str]) -> None:
        self._tool = tool
        self._refs = dict(refs)

    def __getitem__(self, name: str) -> str:
        ref = self._refs.get(name)
        if ref is None:
            raise ConfigError(
                f"tool {self._tool!r} did not declare secret {name!r} "
                f"(its secrets: {', '.join(sorted(self._refs)) or 'none'}); "
                "declare it with @tool(secrets=(...)) and map it in Agent(secrets={...})"
            )
        return resolve_secret(ref)

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"ToolSecrets({self._tool!r}, names={sorted(self._refs)})"
