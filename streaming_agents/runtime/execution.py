"""Switch the job to PyFlink's thread mode, which the agent operator needs.

Thread mode (the embedded interpreter) was measured faster for this operator
and restored every key's timers after a failure; see docs/design.md.  PyFlink
reads ``python.execution-mode`` both when it builds an operator and again
when the operator opens on the TaskManager, so the mode is job-wide: a job
with an agent runs all its Python operators in thread mode (PyFlink's
``AsyncFunction`` is then unavailable; the agent operator does not need it).

The embedded interpreter finds its modules through ``python.pythonpath``,
which is set to this interpreter's site-packages (where pemja and litellm
are installed) plus, when streaming_agents is not installed there (an
editable install, found through a ``.pth`` finder the embedded interpreter
never runs), the folder holding it: without that, a job started from any
folder but the checkout's root failed with ``No module named
'streaming_agents'`` in its workers.
"""

from __future__ import annotations

import logging
import site
from pathlib import Path

from pyflink.datastream import DataStream
from pyflink.util.java_utils import get_j_env_configuration

__all__ = ["package_root", "thread_mode_settings", "use_thread_mode", "worker_pythonpath"]

log = logging.getLogger(__name__)

_MODE = "python.execution-mode"
_PYTHONPATH = "python.pythonpath"


def package_root() -> Path | None:
    """The folder holding ``streaming_agents`` when it is not installed in site-packages."""
    root = Path(__file__).resolve().parents[2]
    installed = [*site.getsitepackages(), site.getusersitepackages()]
    if any(str(root).startswith(str(Path(p).resolve())) for p in installed if p):
        return None
    return root


def worker_pythonpath(existing: str | None) -> str:
    """``existing`` (a ``:`` list) plus the package's folder if needed and site-packages."""
    paths = [p for p in (existing or "").split(":") if p]
    root = package_root()
    extra = [str(root)] if root is not None else []
    extra += list(site.getsitepackages())
    return ":".join([*paths, *[p for p in extra if p not in paths]])


def thread_mode_settings(pythonpath: str | None = None) -> dict[str, str]:
    """Job options for thread mode (``pythonpath``: what the job already has)."""
    return {_MODE: "thread", _PYTHONPATH: worker_pythonpath(pythonpath)}


def use_thread_mode(stream: DataStream) -> None:
    """Configure the job that ``stream`` belongs to for thread mode.

    Python operators built before this call keep the mode they were built
    with (they still work, in a separate worker process); building the whole
    job with :func:`streaming_agents.runtime.environment.local_env`, which
    sets thread mode from the start, avoids that extra process.
    """
    j_conf = get_j_env_configuration(stream._j_data_stream.getExecutionEnvironment())
    settings = thread_mode_settings(j_conf.getString(_PYTHONPATH, None))
    j_conf.setString(_PYTHONPATH, settings[_PYTHONPATH])
    previous = j_conf.getString(_MODE, None)
    if previous not in (None, "thread"):
        log.warning(
            "python.execution-mode %r replaced by 'thread' for the agent operator", previous
        )
    j_conf.setString(_MODE, "thread")
