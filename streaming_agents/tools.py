"""Tools an agent's model may call: typed Python functions.

``@tool`` turns a function into a :class:`Tool`: arguments validated by a
pydantic model built from the signature, the description taken from the
docstring.  ``side_effecting=True`` marks tools that change the world
(send an email, open a ticket): replays and dark launches do not run them,
and their results are journalled like LLM results so that recovery after a
failure does not repeat a side effect whose result was recorded.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ValidationError, create_model

from streaming_agents.errors import ConfigError

__all__ = ["Tool", "tool"]


@dataclass(frozen=True)
class Tool:
    """A function the model may call, with its schema and whether it has side effects."""

    name: str
    description: str
    args_model: type[BaseModel]
    fn: Callable[..., Any]
    side_effecting: bool = False

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
        result = self.fn(**dict(args))
        return json.dumps(result, default=str)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    side_effecting: bool = False,
    name: str | None = None,
) -> Any:
    """Decorator: ``@tool`` or ``@tool(side_effecting=True)``."""

    def wrap(func: Callable[..., Any]) -> Tool:
        fields: dict[str, Any] = {}
        hints = get_type_hints(func)
        for param in inspect.signature(func).parameters.values():
            if param.name not in hints:
                raise ConfigError(f"tool {func.__name__}: parameter {param.name!r} needs a type")
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (hints[param.name], default)
        args_model = create_model(f"{func.__name__}_args", **fields)
        doc = inspect.getdoc(func) or ""
        return Tool(
            name=name or func.__name__,
            description=doc.split("\n\n")[0],
            args_model=args_model,
            fn=func,
            side_effecting=side_effecting,
        )

    return wrap(fn) if fn is not None else wrap
