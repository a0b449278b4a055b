"""Build this checkout's wheel and install it into a fresh virtualenv outside the repository.

Used by tests/test_installed_package.py.  The wheel is built the way ``pip`` builds it for
a user (an isolated build: setuptools from PyPI, cached by pip after the first run).

The fresh virtualenv gets its third-party packages as hard links of the development
venv's installed distributions (``streaming-agents`` itself excluded), then ``pip install
--no-index --find-links DIST streaming-agents``: pip checks the wheel's declared
requirements against what is installed and installs only the wheel, in seconds and
without downloading PyFlink's 300 MB again.  Hard links are safe: pip and Python replace
files (write + rename), never write into them.  ``SA_WHEEL_TEST_FROM_PYPI=1`` installs
every dependency from PyPI instead (minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the user's shell has none of the checkout's settings
DROPPED_ENV = (
    "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "SA_JARS_DIR", "SA_REPO_ROOT",
    "STREAMING_AGENTS_JOBS_DIR", "STREAMING_AGENTS_KAFKA_BOOTSTRAP", "STREAMING_AGENTS_MODEL",
    "STREAMING_AGENTS_OFFLINE", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS",
)  # fmt: skip


@dataclass(frozen=True)
class Installed:
    """A virtualenv with the wheel installed, and an empty work folder outside the repo."""

    venv: Path
    wheel: Path
    work: Path
    cache: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "streaming-agents"

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment: the venv first on PATH, no checkout settings."""
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["STREAMING_AGENTS_CACHE_DIR"] = str(self.cache)
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        env.update(extra)
        return env


def _run(cmd: list[str], **kwargs: object) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise AssertionError(f"{cmd[:4]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return str(done.stdout)


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of the checkout (isolated build, like a user's ``pip install .``)."""
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)])
    wheels = sorted(out.glob("streaming_agents-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _link_dependencies(target: Path) -> None:
    """Hard-link the dev venv's installed distributions into ``target`` (not this package)."""
    source = Path(sysconfig.get_paths()["purelib"])
    for entry in source.iterdir():
        name = entry.name.lower()
        if name.startswith(("streaming_agents", "__editable__", "__pycache__")):
            continue
        if entry.is_dir():
            # pyflink/log/ is appended to in place: a link would write into the dev venv's logs
            ignore = shutil.ignore_patterns("*.log") if entry.name == "pyflink" else None
            shutil.copytree(
                entry, target / entry.name, copy_function=os.link, symlinks=True, ignore=ignore
            )
        else:
            os.link(entry, target / entry.name)


def install(base: Path) -> Installed:
    """Build the wheel, create ``base/venv``, install the wheel; ``base/work`` is empty."""
    wheel = build_wheel(base / "dist")
    venv = base / "venv"
    from_pypi = os.environ.get("SA_WHEEL_TEST_FROM_PYPI") == "1"
    python = getattr(sys, "_base_executable", sys.executable)
    _run([python, "-m", "venv", *([] if from_pypi else ["--without-pip"]), str(venv)])
    if from_pypi:
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), "mypy"])
    else:
        site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        _link_dependencies(site / "site-packages")
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index"]
        _run([*cmd, "--find-links", str(wheel.parent), "streaming-agents"])
    work = base / "work"
    work.mkdir()
    return Installed(venv=venv, wheel=wheel, work=work, cache=base / "cache")


def readme_block(heading: str, index: int = 0, language: str = "python") -> str:
    """The ``index``-th ``language`` code block under the README heading ``heading``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    blocks = section.split(f"```{language}\n")[1:]
    return blocks[index].split("```", 1)[0]
