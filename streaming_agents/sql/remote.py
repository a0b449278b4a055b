"""``streaming-agents sql SCRIPT --rest HOST:PORT``: the jobs on a standalone Flink cluster.

The statements run here, on the client, as with the local mini-cluster; each
job is submitted to the cluster's REST API (``execution.target: remote``).
With the job go, as Flink job artifacts uploaded at submission:

* the Kafka connector jar (``pipeline.jars``);
* the script's folder (``python.files``: modules named by ``CREATE TOOL`` /
  ``CREATE FUNCTION``);
* with ``--ship deps`` (default) ``streaming_agents`` itself and every
  package it needs that apache-flink does not bring
  (:func:`streaming_agents.cli.ship.stage_dependencies`: this machine's
  builds, so the workers need the same Python version and platform); with
  ``--ship library`` only ``streaming_agents`` (the cluster has the rest);
  with ``--ship none`` nothing (the cluster has it all).

The workers run the cluster's own ``python.executable`` (read from its
``/jobmanager/config``) with its own site-packages on ``python.pythonpath``
(thread mode's embedded interpreter needs it), never this machine's
interpreter or folders.  A cluster that sets no ``python.executable`` is
refused with that message.  API keys named by ``api_key_env`` are read on
the TaskManagers: set them in their environment.
"""

from __future__ import annotations

import shutil
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streaming_agents.errors import ConfigError

__all__ = ["RemoteTarget", "parse_rest", "prepare_remote"]


@dataclass
class RemoteTarget:
    """Where the jobs go and what their workers get."""

    rest_url: str
    worker_python: str
    worker_pythonpath: str
    python_files: list[str] = field(default_factory=list)
    shipped: str = ""
    """One line saying what is shipped (for the console)."""

    @property
    def host(self) -> str:
        return str(urllib.parse.urlparse(self.rest_url).hostname)

    @property
    def port(self) -> int:
        return int(urllib.parse.urlparse(self.rest_url).port or 80)

    def settings(self) -> dict[str, str]:
        """Flink options sending jobs to the cluster with its own Python."""
        return {
            "execution.target": "remote",
            "rest.address": self.host,
            "rest.port": str(self.port),
            "python.executable": self.worker_python,
            "python.pythonpath": self.worker_pythonpath,
        }


def parse_rest(value: str) -> str:
    """``HOST:PORT`` or ``http://HOST:PORT`` as ``http://HOST:PORT``."""
    url = value if "://" in value else f"http://{value}"
    parsed = urllib.parse.urlparse(url.rstrip("/"))
    if parsed.scheme != "http" or not parsed.hostname or parsed.port is None:
        raise ConfigError(f"--rest must be HOST:PORT (or http://HOST:PORT), got {value!r}")
    return f"http://{parsed.hostname}:{parsed.port}"


def _cluster_config(rest_url: str) -> dict[str, str]:
    from streaming_agents.flink_rest import FlinkRest

    return FlinkRest(rest_url).config()


def _worker_python(config: dict[str, str]) -> tuple[str, str]:
    """The cluster's ``python.executable`` and its site-packages (a virtualenv's layout)."""
    executable = config.get("python.executable", "")
    if "/" not in executable:
        raise ConfigError(
            "the cluster sets no python.executable (a path to its workers' Python with "
            "apache-flink, e.g. a virtualenv): the SQL runner needs it to run the agents' Python "
            "there; set it in the cluster's config.yaml"
        )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = str(Path(executable).parent.parent / "lib" / version / "site-packages")
    return executable, config.get("python.pythonpath") or site


def _stage_library(target: Path) -> None:
    import streaming_agents

    package = Path(streaming_agents.__file__).resolve().parent
    ignore = shutil.ignore_patterns("__pycache__", "_jobs", "*.jar", "*.pyc")
    shutil.copytree(package, target / "streaming_agents", ignore=ignore)


def prepare_remote(rest: str, ship: str, workdir: Path) -> RemoteTarget:
    """Check the cluster, stage what ``ship`` sends under ``workdir``; the target.

    ``workdir`` must live until every job was submitted (its files are
    uploaded at submission).
    """
    from streaming_agents.cli.ship import python_tag, stage_dependencies

    rest_url = parse_rest(rest)
    executable, pythonpath = _worker_python(_cluster_config(rest_url))
    target = RemoteTarget(rest_url, executable, pythonpath)
    if ship in ("deps", "library"):
        _stage_library(workdir / "sa_lib")
        target.python_files.append(str(workdir / "sa_lib"))
        target.shipped = "shipping streaming_agents"
    if ship == "deps":
        count, size = stage_dependencies(workdir / "sa_deps")
        target.python_files.append(str(workdir / "sa_deps"))
        target.shipped += f" and {count} packages ({size / 1e6:.0f} MB, {python_tag()})"
    if target.shipped:
        target.shipped += f" to the workers of {rest_url}"
    return target


def remote_table_env(target: RemoteTarget, restart_attempts: int, **local_env_args: Any) -> Any:
    """A ``StreamTableEnvironment`` whose jobs go to ``target`` (see the module doc)."""
    from streaming_agents.sql.session import default_table_env

    extra = dict(local_env_args.pop("extra_config", None) or {})
    t_env = default_table_env(
        restart_attempts=restart_attempts,
        extra_config={**extra, **target.settings()},
        **local_env_args,
    )
    config = t_env.get_config()
    for key, value in target.settings().items():  # over what local_env adds for this host
        config.set(key, value)
    return t_env
