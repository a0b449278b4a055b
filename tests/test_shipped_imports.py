"""streaming_agents.runtime.shipped_imports in a plain interpreter (no Flink): the sequence of
a TaskManager's embedded Python across two shipped jobs.

Each case runs a new interpreter (``-S``: no site hooks, so the editable install of the
checkout is not found) that imports ``streaming_agents`` from a copy "job A" (a temp
folder), deletes that folder as Flink does when A ends, puts copy "job B" on ``sys.path``
and imports ``streaming_agents.sql``, which A never imported.  The cluster version of the
same sequence is tests/test_bare_workers.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import streaming_agents

PACKAGE = Path(streaming_agents.__file__).resolve().parent

SCRIPT = """
import logging, shutil, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
job_a, job_b, install, wanted = sys.argv[1], sys.argv[2], sys.argv[3] == "install", sys.argv[4]
sys.path[:0] = [job_a]
import streaming_agents.errors
from streaming_agents.runtime import shipped_imports
if install:
    shipped_imports.install()
    shipped_imports.install()  # idempotent
finders = [f for f in sys.meta_path if type(f).__name__ == "StalePackageFinder"]
print("finders", len(finders))
shutil.rmtree(job_a)  # job A ended
sys.path[:] = [job_b] + [p for p in sys.path if p != job_a]
import importlib
try:
    module = importlib.import_module(wanted)
except ImportError as e:
    print("failed", type(e).__name__, e)
else:
    print("imported", module.__file__)
    print("path", streaming_agents.__path__[0])
    if install:
        shipped_imports.install()  # job B's open()
"""


def _copy(target: Path) -> Path:
    shutil.copytree(PACKAGE, target / "streaming_agents", ignore=shutil.ignore_patterns(
        "__pycache__", "_jobs", "_jars", "*.pyc"))  # fmt: skip
    return target


def _run(
    tmp_path: Path, install: bool, edit_b: bool = False, wanted: str = "streaming_agents.sql.lexer"
) -> subprocess.CompletedProcess[str]:
    job_a, job_b = _copy(tmp_path / "job-a"), _copy(tmp_path / "job-b")
    if edit_b:
        with (job_b / "streaming_agents" / "memory.py").open("a") as source:
            source.write("\n# a different version\n")
    site = sysconfig.get_paths()["purelib"]
    code = f"import sys; sys.path.append({site!r})\n" + SCRIPT
    mode = "install" if install else "-"
    return subprocess.run(
        [sys.executable, "-S", "-c", code, str(job_a), str(job_b), mode, wanted],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_without_the_finder_the_second_copy_is_not_found(tmp_path: Path) -> None:
    done = _run(tmp_path, install=False)
    assert done.returncode == 0, done.stderr
    assert "finders 0" in done.stdout
    assert "failed ModuleNotFoundError No module named 'streaming_agents.sql'" in done.stdout


def test_the_finder_takes_submodules_from_the_live_copy(tmp_path: Path) -> None:
    done = _run(tmp_path, install=True)
    assert done.returncode == 0, done.stderr
    assert "finders 1" in done.stdout, done.stdout
    job_b = tmp_path / "job-b" / "streaming_agents"
    assert f"imported {job_b / 'sql' / 'lexer.py'}" in done.stdout, (done.stdout, done.stderr)
    assert f"path {job_b}" in done.stdout  # the stale package now points to job B's copy
    assert "WARNING" not in done.stderr, done.stderr  # the same version: nothing to say


def test_a_different_copy_is_refused_not_mixed(tmp_path: Path) -> None:
    done = _run(tmp_path, install=True, edit_b=True)
    assert done.returncode == 0, done.stderr
    assert "failed ShippedCopyMismatch" in done.stdout, (done.stdout, done.stderr)
    assert "ships a different copy" in done.stdout and "restart the TaskManagers" in done.stdout


def test_a_different_copy_needing_nothing_new_runs_the_loaded_one_and_says_so(
    tmp_path: Path,
) -> None:
    done = _run(tmp_path, install=True, edit_b=True, wanted="streaming_agents.errors")
    assert done.returncode == 0, done.stderr
    job_a = tmp_path / "job-a" / "streaming_agents"
    assert f"imported {job_a / 'errors.py'}" in done.stdout, (done.stdout, done.stderr)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    job_b = tmp_path / "job-b" / "streaming_agents"
    assert len(warnings) == 1 and f"differs from the copy at {job_b}" in warnings[0], warnings
    assert "restart the TaskManagers" in warnings[0]


def test_a_sql_job_reading_only_kafka_json_tables_installs_the_finder() -> None:
    # such a job runs no agent and no AI function: its counting steps' open() installs it
    code = (
        "import sys\n"
        "from streaming_agents.sql.counted import CountedStep\n"
        "from streaming_agents.runtime.shipped_imports import StalePackageFinder\n"
        "before = any(isinstance(f, StalePackageFinder) for f in sys.meta_path)\n"
        "CountedStep(lambda v: [v]).open(None)\n"
        "print(before, sum(isinstance(f, StalePackageFinder) for f in sys.meta_path))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "1"], done.stdout
