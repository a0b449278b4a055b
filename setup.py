"""Build step of the wheel: put the Kafka connector jar and the shipped jobs inside it.

Everything else is declared in ``pyproject.toml``.  When a wheel is built (not for
an editable install, which uses the checkout's ``jobs/`` and ``.jars/``), ``build_py``
also writes:

* ``streaming_agents/_jars/flink/<jar>``: the jars pinned in
  ``streaming_agents/_jars/flink.lock.json``, taken from ``$SA_JARS_DIR/flink``,
  ``.jars/flink`` (``make jars``) or the local Maven repository, else downloaded
  from Maven Central; each checked against its SHA-256 before it is packed;
* ``streaming_agents/_jobs/<job>/``: the job packages of ``jobs/`` (found at run time
  by ``streaming_agents.registry``).

It cannot import ``streaming_agents`` (its dependencies are not installed in an
isolated build), so the little lookup it needs is written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
LOCK = ROOT / "streaming_agents" / "_jars" / "flink.lock.json"
MAVEN = os.environ.get("STREAMING_AGENTS_MAVEN_URL") or "https://repo1.maven.org/maven2"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _maven_path(jar: dict[str, str]) -> str:
    suffix = f"-{jar['classifier']}" if jar["classifier"] else ""
    folder = f"{jar['group'].replace('.', '/')}/{jar['artifact']}/{jar['version']}"
    return f"{folder}/{jar['artifact']}-{jar['version']}{suffix}.jar"


def _place_jar(jar: dict[str, str], target: Path) -> None:
    candidates = [ROOT / ".jars" / "flink" / jar["file"]]
    if os.environ.get("SA_JARS_DIR"):
        candidates.insert(0, Path(os.environ["SA_JARS_DIR"]) / "flink" / jar["file"])
    candidates.append(Path.home() / ".m2" / "repository" / _maven_path(jar))
    out = target / jar["file"]
    source = next((c for c in candidates if c.is_file()), None)
    if source is not None:
        shutil.copyfile(source, out)
    else:
        url = f"{MAVEN.rstrip('/')}/{_maven_path(jar)}"
        print(f"downloading {url}")
        with urllib.request.urlopen(url, timeout=120) as response, out.open("wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 20)
    if _sha256(out) != jar["sha256"]:
        out.unlink()
        raise SystemExit(f"{jar['file']} from {source or MAVEN} does not match its pinned SHA-256")


class BuildPyWithJarsAndJobs(build_py):
    """``build_py`` that also packs the connector jar and the jobs (wheel builds only)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        package = Path(self.build_lib) / "streaming_agents"
        jars = package / "_jars" / "flink"
        jars.mkdir(parents=True, exist_ok=True)
        for jar in json.loads(LOCK.read_text())["jars"]:
            _place_jar(jar, jars)
        jobs = package / "_jobs"
        shutil.rmtree(jobs, ignore_errors=True)
        shutil.copytree(ROOT / "jobs", jobs, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithJarsAndJobs})
