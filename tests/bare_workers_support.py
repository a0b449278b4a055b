"""A private standalone Flink cluster whose workers' Python lacks this package's dependencies.

The workers' ``python.executable`` is a fresh virtualenv holding apache-flink and its own
requirements only (hard links of the development venv's installed files), none of
litellm, pydantic, openai, aiohttp... nor streaming_agents: what a stock PyFlink image
has.  The cluster runs on free ports with its own run folder
(:class:`~streaming_agents.chaos.cluster.ChaosCluster`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streaming_agents.chaos.cluster import ChaosCluster
from streaming_agents.cli.ship import distribution_closure

LACKING = ("litellm", "pydantic", "openai", "streaming_agents", "aiohttp")


def bare_worker_venv(target: Path) -> Path:
    """A venv with apache-flink's requirement closure only; returns its python."""
    subprocess.run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", target],
        check=True,
    )
    flink = distribution_closure(["apache-flink"])
    source = Path(sysconfig.get_paths()["purelib"])
    site = target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    for dist in flink:
        for file in dist.files or ():
            path = Path(str(dist.locate_file(file))).resolve()
            if not path.is_relative_to(source) or not path.is_file() or path.suffix == ".log":
                continue
            out = site / "site-packages" / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            if not out.exists():
                os.link(path, out)
    python = target / "bin" / "python"
    probe = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in sys.argv[1:]))"
    # An explicit environment: PyFlink's in-process JVM of earlier tests can leave PYTHONPATH
    # in the C-level environment, which a child inherits when no env is given.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([python, "-c", probe, *LACKING], cwd=target, env=env, check=False)
    assert done.returncode == 0, f"the bare venv can import one of {LACKING}"
    return python


class BareWorkerCluster(ChaosCluster):
    """A ChaosCluster whose TaskManagers run ``worker_python`` (``python.executable``).

    Start it from a folder outside the checkout (:meth:`up_outside`): the embedded
    interpreter of the TaskManager puts its working folder on ``sys.path``.
    """

    def up_outside(self) -> None:
        previous = Path.cwd()
        os.chdir(self.run_dir)
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        finally:
            os.chdir(previous)

    def __init__(self, run_dir: Path, worker_python: Path) -> None:
        super().__init__(run_dir)
        self.worker_python = worker_python

    def env(self) -> dict[str, str]:
        """Without PYTHONPATH/PYTHONHOME: the workers must see their own venv only."""
        return {k: v for k, v in super().env().items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def render_conf(self) -> Path:
        conf = super().render_conf()
        config = self.conf_dir / "config.yaml"
        text = config.read_text()
        head, sep, rest = text.partition("python:\n  executable: ")
        assert sep, "flink-conf/config.yaml has no python.executable"
        _, newline, tail = rest.partition("\n")
        # what an operator sets once for thread mode: the workers' own site-packages
        site = subprocess.run(
            [self.worker_python, "-c", "import site; print(':'.join(site.getsitepackages()))"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        text = f"{head}{sep}{self.worker_python}{newline}{tail}"
        config.write_text(text + f"\npython.pythonpath: {site}\n")
        return conf


@contextmanager
def started_bare_cluster(base: Path, worker_env: dict[str, str]) -> Iterator[BareWorkerCluster]:
    """A BareWorkerCluster under ``base`` (its worker venv and run folder), started outside
    the checkout with ``worker_env`` (e.g. the API key) in its workers' environment; stopped
    on exit."""
    python = bare_worker_venv(base / "worker-venv")
    cluster = BareWorkerCluster(base / "run", python)
    cluster.extra_env = dict(worker_env)
    (base / "run").mkdir()
    cluster.up_outside()
    try:
        yield cluster
    finally:
        cluster.down()
