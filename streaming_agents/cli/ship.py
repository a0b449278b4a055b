"""What ``streaming-agents submit`` ships to a cluster's Python workers.

A stock Flink cluster's workers have PyFlink (apache-flink) and nothing else of
ours.  ``submit --ship deps`` (the default) sends them, with the job:

* the job package and ``streaming_agents`` (a zip, ``-pyfs``), as before;
* every installed distribution ``streaming-agents`` needs that ``apache-flink``
  does not already bring (litellm, pydantic, openai, aiohttp, ...): their files
  from this machine's site-packages, staged in one folder that Flink uploads
  once per job (``-pyfs DIR``: it lands on the workers' ``PYTHONPATH``).

These are this machine's builds (CPython 3.11, this platform): the workers need
the same Python version and platform.  Otherwise install the dependencies on the
cluster (``deploy/Dockerfile``) and submit with ``--ship library`` (or
``none`` when the cluster also has this package).  What cannot be shipped (a
requirement missing here, or installed editable) is refused with its name.

A TaskManager's thread-mode Python outlives jobs, and Flink deletes each job's shipped
copy when the job ends: how a later job still imports from its own copy (and why a
different version is refused rather than mixed) is
:mod:`streaming_agents.runtime.shipped_imports`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from streaming_agents.errors import ConfigError

__all__ = [
    "SHIP_MODES",
    "distribution_closure",
    "python_tag",
    "stage_dependencies",
    "worker_distributions",
]

SHIP_MODES = ("deps", "library", "none")
_ROOT = "streaming-agents"
_FLINK = "apache-flink"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_closure(
    roots: Iterable[str], *, installed_extras: bool = False
) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` need (themselves included).

    ``installed_extras``: also follow transport extras installed here (:func:`_runtime_extra`):
    code imports them when present (httpx's ``h2`` was one).
    """
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = [(_norm(r), True) for r in roots]
    roots_seen = {name for name, _ in todo}  # their own extras (dev tools) are not followed
    while todo:
        name, required = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if not required:
                continue
            raise ConfigError(
                f"{name} is required but not installed here, so it cannot be shipped"
            ) from None
        seen[name] = dist
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append((_norm(req.name), True))
            elif (
                installed_extras
                and required  # one level: an optional package's own extras are not followed
                and name not in roots_seen
                and _runtime_extra(str(req.marker))
            ):
                todo.append((_norm(req.name), False))
    return list(seen.values())


_RUNTIME_EXTRAS = re.compile(r"extra == ['\"](http2|socks|brotli|zstd|speedups)['\"]")


def _runtime_extra(marker: str) -> bool:
    """An extra that adds a transport feature code switches on when installed (httpx's
    ``http2``: h2); other extras (tests, dev tools, servers) are not shipped."""
    return bool(_RUNTIME_EXTRAS.search(marker))


def worker_distributions() -> list[metadata.Distribution]:
    """What workers with only apache-flink lack: our requirements' closure minus Flink's."""
    flink = {_norm(d.metadata["Name"]) for d in distribution_closure([_FLINK])}
    return [
        d
        for d in distribution_closure([_ROOT], installed_extras=True)
        if _norm(d.metadata["Name"]) not in flink | {_ROOT}
    ]


def stage_dependencies(target: Path) -> tuple[int, int]:
    """Put the files of :func:`worker_distributions` under ``target`` (hard links when possible).

    Returns ``(distributions, bytes)``.  Only files inside this interpreter's
    site-packages are staged (not scripts in ``bin/``); compiled caches are left out.
    """
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    dists = worker_distributions()
    size = 0
    for dist in dists:
        files = dist.files
        if not files:
            name = dist.metadata["Name"]
            raise ConfigError(f"cannot ship {name}: its files are not listed (installed editable?)")
        for file in files:
            path = Path(str(dist.locate_file(file))).resolve()
            if not path.is_relative_to(site) or not path.is_file() or path.suffix == ".pyc":
                continue
            out = target / path.relative_to(site)
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, out)
            except OSError:  # another file system, or already staged
                if not out.exists():
                    shutil.copy2(path, out)
            size += path.stat().st_size
    return len(dists), size


def python_tag() -> str:
    """``cp311-linux-x86_64``: what the shipped compiled packages were built for."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{sysconfig.get_platform()}"
