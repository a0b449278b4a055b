"""Execution environments for PyFlink jobs, and where the project's jars live.

:func:`local_env` returns a ``StreamExecutionEnvironment`` configured the way
every job in this project needs:

* the Python workers run *this* interpreter (``python.executable``), otherwise
  Flink starts ``python`` from ``PATH`` and fails with "No module named pyflink";
* the Kafka connector jar (shipped in the wheel, checksum-verified; see
  :mod:`streaming_agents.jars`) is on ``pipeline.jars`` and loaded into this
  process's JVM, so Kafka sources and sinks can be built right after;
* exactly-once checkpointing is on.  A checkpoint is the unit of recovery *and*
  of output: the exactly-once Kafka sink commits its transaction only when the
  checkpoint that covers those records completes, so the checkpoint interval is
  also the end-to-end latency seen by ``read_committed`` consumers;
* the Python bundle time is small (10 ms) so records are not held back for the
  default second before reaching the JVM.

Run inside ``flink run -py`` the same function returns the cluster's context
environment (the cluster's own ``config.yaml`` supplies the rest), so a job's
``main()`` can always call it.  Nothing here starts a JVM at import time:
PyFlink is imported inside the functions.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from streaming_agents.errors import InfrastructureError

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

__all__ = ["connector_jars", "jars_dir", "java_home", "local_env", "repo_root"]

StateBackend = Literal["hashmap", "rocksdb"]


def repo_root() -> Path:
    """The source checkout this package lives in (``SA_REPO_ROOT`` overrides it)."""
    override = os.environ.get("SA_REPO_ROOT")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parents[2]


def jars_dir() -> Path:
    """``$SA_JARS_DIR`` or ``<repo>/.jars``: the checkout's ``flink/`` and ``kafka/`` jar folders.

    Only a source checkout (``make jars``) or a folder you filled has them; an
    installed package finds its jars through :mod:`streaming_agents.jars`.
    """
    override = os.environ.get("SA_JARS_DIR")
    return Path(override).resolve() if override else repo_root() / ".jars"


def connector_jars() -> list[Path]:
    """The Flink Kafka connector jar(s), verified (:func:`streaming_agents.jars.connector_jars`)."""
    from streaming_agents.jars import connector_jars as jars

    return jars()


def java_home() -> str:
    """``$JAVA_HOME`` if it holds ``bin/java``, else the JDK of the ``java`` on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return home
    java = shutil.which("java")
    if java is None:
        raise InfrastructureError("no `java` found: install a JDK 17 or set JAVA_HOME")
    return str(Path(java).resolve().parents[1])


def local_env(
    parallelism: int = 1,
    checkpoint_interval_ms: int | None = 2000,
    state_backend: StateBackend = "hashmap",
    checkpoint_dir: str | None = None,
    extra_config: dict[str, str] | None = None,
) -> StreamExecutionEnvironment:
    """A ``StreamExecutionEnvironment`` ready for Kafka + Python operators.

    Args:
        parallelism: default operator parallelism.
        checkpoint_interval_ms: exactly-once checkpoint interval; ``None`` turns
            checkpointing off (then an exactly-once Kafka sink only commits at
            the end of a bounded input, and nothing survives a failure).
        state_backend: ``hashmap`` (state on the heap, fast, small state) or
            ``rocksdb`` (state on local disk, incremental checkpoints).
        checkpoint_dir: where completed checkpoints are written (a path or a
            ``file://`` URI).  Without it checkpoints live in JobManager memory
            and cannot be used to restart a job after the process exits.
        extra_config: any other Flink options, applied last (they win).
    """
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.runtime.execution import thread_mode_settings

    config = Configuration()
    settings: dict[str, str] = {
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.time": "10",
        # set through Configuration, pipeline.jars also loads the jar into this JVM
        "pipeline.jars": ";".join(jar.as_uri() for jar in connector_jars()),
        "state.backend.type": state_backend,
        # the agent operator needs thread mode; set it before any operator is built
        **thread_mode_settings(),
    }
    if checkpoint_interval_ms is not None:
        settings["execution.checkpointing.interval"] = f"{checkpoint_interval_ms} ms"
        settings["execution.checkpointing.mode"] = "EXACTLY_ONCE"
    if checkpoint_dir is not None:
        uri = checkpoint_dir if "://" in checkpoint_dir else Path(checkpoint_dir).resolve().as_uri()
        settings["execution.checkpointing.dir"] = uri
    if state_backend == "rocksdb":
        settings.setdefault("execution.checkpointing.incremental", "true")
    settings.update(extra_config or {})
    # The embedded (thread mode) interpreter does not run site-packages' .pth files, so an
    # editable install of this package is invisible to it: name the package's folder too.
    paths = [p for p in settings.get("python.pythonpath", "").split(":") if p]
    package_root = str(Path(__file__).resolve().parents[2])
    settings["python.pythonpath"] = ":".join(
        [*paths, *([] if package_root in paths else [package_root])]
    )
    for key, value in settings.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    return env
