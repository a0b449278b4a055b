"""Tools an agent's model may call: typed Python functions.

``@tool`` turns a function into a :class:`Tool`: arguments validated by a
pydantic model built from the signature, the description taken from the
docstring.  ``side_effecting=True`` marks tools that change the world
(send an email, open a ticket): replays and dark launches do not run them,
and their results are journalled like LLM results so that recovery after a
failure does not repeat a side effect whose result was recorded.

Secrets: ``@tool(secrets=("crm_token",))`` declares the secrets a tool needs
by name; the function takes them through one parameter annotated
:class:`~streaming_agents.secret_refs.ToolSecrets` (left out of the schema the
model sees).  The agent maps each name to a reference (``Agent(secrets=
{"crm_token": "file:/run/secrets/crm"})``) and binds its tools to those
references when it is defined; at call time the tool gets a ``ToolSecrets``
holding its declared names only, each read from its reference on access.
Neither the tool nor the job graph ever holds a secret's value.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError, create_model

from streaming_agents.errors import ConfigError
from streaming_agents.secret_refs import ToolSecrets, check_secret_ref

__all__ = ["Tool", "ToolSecrets", "tool"]


@dataclass(frozen=True)
class Tool:
    """A function the model may call, with its schema and whether it has side effects."""

    name: str
    description: str
    args_model: type[BaseModel]
    fn: Callable[..., Any]
    side_effecting: bool = False
    secrets: tuple[str, ...] = ()
    """Names of the secrets the tool needs (bound to references by its agent)."""
    secrets_param: str | None = None
    """The function's :class:`ToolSecrets` parameter, if it takes one."""
    secret_refs: tuple[tuple[str, str], ...] = ()
    """``(name, reference)`` for each declared secret, set by :meth:`bind_secrets`."""

    def bind_secrets(self, refs: Mapping[str, str], owner: str = "its agent") -> Tool:
        """This tool with its declared secrets bound to ``refs`` (name -> reference).

        Only the declared names are kept: the tool never learns the others.
        """
        missing = [name for name in self.secrets if name not in refs]
        if missing:
            raise ConfigError(
                f"tool {self.name!r} needs secret(s) {', '.join(missing)}: "
                f"map them to references in {owner}'s secrets"
            )
        bound = tuple(
            (name, check_secret_ref(refs[name], f"secret {name!r} of tool {self.name!r}"))
            for name in self.secrets
        )
        return dataclasses.replace(self, secret_refs=bound)

    def schema(self) -> dict[str, Any]:
        """The OpenAI-style tool declaration sent with requests."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.args_model.model_json_schema(),
            },
        }

    def invoke(self, arguments: str) -> str:
        """Validate the model's JSON arguments, call the function, return JSON.

        Invalid arguments are reported back to the model as the tool's result
        (it can correct itself) instead of failing the event.
        """
        try:
            args = self.args_model.model_validate_json(arguments or "{}")
        except ValidationError as exc:
            return json.dumps({"error": f"invalid arguments: {exc.errors(include_url=False)}"})
        call = dict(args)
        if self.secrets_param is not None:
            call[self.secrets_param] = ToolSecrets(self.name, dict(self.secret_refs))
        result = self.fn(**call)
        return json.dumps(result, default=str)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    side_effecting: bool = False,
    name: str | None = None,
    secrets: tuple[str, ...] | list[str] = (),
) -> Any:
    """Decorator: ``@tool``, ``@tool(side_effecting=True)``, ``@tool(secrets=("token",))``."""

    def wrap(func: Callable[..., Any]) -> Tool:
        fields: dict[str, Any] = {}
        secrets_param: str | None = None
        hints = get_type_hints(func)
        for param in inspect.signature(func).parameters.values():
            if param.name not in hints:
                raise ConfigError(f"tool {func.__name__}: parameter {param.name!r} needs a type")
            if hints[param.name] is ToolSecrets:
                secrets_param = param.name
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (hints[param.name], default)
        declared = _declared(func.__name__, secrets, secrets_param)
        args_model = create_model(f"{func.__name__}_args", **fields)
        doc = inspect.getdoc(func) or ""
        return Tool(
            name=name or func.__name__,
            description=doc.split("\n\n")[0],
            args_model=args_model,
            fn=func,
            side_effecting=side_effecting,
            secrets=declared,
            secrets_param=secrets_param,
        )

    return wrap(fn) if fn is not None else wrap


def _declared(
    func: str, secrets: tuple[str, ...] | list[str], secrets_param: str | None
) -> tuple[str, ...]:
    if isinstance(secrets, str):
        raise ConfigError(f"tool {func}: secrets= takes a tuple of names, not a string")
    declared = tuple(dict.fromkeys(secrets))
    if declared and secrets_param is None:
        raise ConfigError(f"tool {func} declares secrets but has no ToolSecrets parameter")
    if secrets_param is not None and not declared:
        raise ConfigError(f"tool {func} takes ToolSecrets but declares no secrets=(...)")
    if any(not s for s in declared):
        raise ConfigError(f"tool {func}: an empty secret name")
    return declared
