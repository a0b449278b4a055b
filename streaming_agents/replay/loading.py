"""Load an agent from ``module:attribute`` (the CLI's ``--agent``)."""

from __future__ import annotations

import importlib
import os
import site
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from streaming_agents.agent import Agent
from streaming_agents.errors import ConfigError

__all__ = ["load_agent"]


def _installed(module: ModuleType) -> bool:
    """Whether the worker can import ``module`` itself (it is in site-packages)."""
    where = getattr(module, "__file__", None)
    if where is None:
        return True
    path = str(Path(where).resolve())
    roots = [*site.getsitepackages(), site.getusersitepackages()]
    if any(path.startswith(str(Path(root).resolve())) for root in roots if root):
        return True
    return module.__name__.split(".")[0] == "streaming_agents"


def load_agent(spec: str) -> Agent[Any]:
    """The :class:`Agent` at ``module:attribute``; a callable there is called with no arguments.

    The current directory is importable.  A module outside site-packages is
    pickled by value into the job, so the Flink workers need not import it.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--agent {spec!r}: use module:attribute, e.g. my_agents.support:agent")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--agent {spec!r}: cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"--agent {spec!r}: {module_name} has no attribute {attr!r}"
            ) from None
    if not isinstance(obj, Agent) and callable(obj):
        obj = obj()
    if not isinstance(obj, Agent):
        raise ConfigError(f"--agent {spec!r} is a {type(obj).__name__}, not an Agent")
    if not _installed(module):
        import cloudpickle  # type: ignore[import-untyped]

        cloudpickle.register_pickle_by_value(module)
    return obj
