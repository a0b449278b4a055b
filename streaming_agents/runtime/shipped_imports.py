"""Imports of a shipped package whose first copy, from an earlier job, was deleted.

A Flink TaskManager runs thread-mode Python in one embedded interpreter for its whole
life; ``sys.modules`` outlives jobs.  With ``--ship`` (``submit``, ``sql --rest``) each
job brings its own copy of ``streaming_agents`` (and its dependencies), extracted into a
folder Flink deletes when the job ends.  Job A imports ``streaming_agents`` from its
folder; job B, later, finds ``sys.modules['streaming_agents']`` already there, its
``__path__`` pointing to A's deleted folder, so a submodule A never imported
(``streaming_agents.sql``) failed: ``No module named 'streaming_agents.sql'``, raised
while Flink unpickles B's functions, before any code of B runs.

What this module does.  :func:`install` (called from the ``open()`` of the agent
operator, the SQL AI functions and the SQL Kafka JSON tables' counting steps, i.e.
inside the TaskManager, never at import time) appends one :class:`StalePackageFinder`
to ``sys.meta_path``, once per interpreter.  It is asked only
after Python's own finders failed; when the parent package of the module asked for has a
``__path__`` whose folders no longer exist, it looks for that package on the current
``sys.path`` (job B's shipped folders), repoints the stale ``__path__`` of the package and
of its loaded subpackages there (later imports then take B's folders the normal way) and
returns the module's spec from there.  (Modules already loaded keep their ``__file__`` in
A's deleted folder: files read next to them at run time are gone.)  Since the finder was
installed by job A, it is in place when B's functions are unpickled.  This works for any
shipped package (litellm, pydantic, ... of ``--ship deps`` too), not only ours.

Versions.  Modules job A imported stay A's: Python cannot swap the modules of a running
interpreter safely.  For ``streaming_agents`` the finder knows a fingerprint of A's copy
(a hash of its ``.py`` files, taken when it is installed) and compares it with the copy it
would resolve from: when they differ it refuses (:class:`ShippedCopyMismatch`, an
``ImportError`` naming both fingerprints and the fix) rather than mixing two versions in
one job.  When job B needs nothing A did not import, no import fails and B runs A's
modules; :func:`install` then logs one WARNING per differing copy found on ``sys.path``
(``streaming_agents loaded here by an earlier job ... differs from ...``).  The fix in
both cases: restart the TaskManagers, or install the package in the workers' Python
and submit with ``--ship none``.  Other packages' versions are not compared (one
WARNING line names the package the first time it is resolved this way).

Outside a TaskManager the finder is inert: it acts only when a loaded package's folders
were deleted.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from streaming_agents.errors import ConfigError

__all__ = ["ShippedCopyMismatch", "StalePackageFinder", "fingerprint", "install"]

log = logging.getLogger(__name__)

PACKAGE = "streaming_agents"
_SKIPPED = frozenset({"__pycache__", "_jobs"})  # what the shipped copies leave out
_MARK = "_streaming_agents_stale_package_finder"
_lock = threading.Lock()
_warned: set[str] = set()


class ShippedCopyMismatch(ConfigError, ImportError):
    """A job ships a copy of ``streaming_agents`` that differs from the one loaded here."""


def fingerprint(folder: str) -> str | None:
    """A short hash of the ``.py`` files under ``folder`` (paths and contents); None if absent."""
    if not os.path.isdir(folder):
        return None
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED)
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as source:
                digest.update(source.read())
    return digest.hexdigest()[:16]


def _gone(entry: str) -> bool:
    """``entry`` (a ``__path__`` item) is a folder that was deleted (not inside a zip)."""
    path = os.path.abspath(entry)
    if os.path.exists(path):
        return False
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent
    return os.path.isdir(path)  # an existing ancestor that is a file: a zip archive


def _stale(module: ModuleType | None) -> bool:
    paths = getattr(module, "__path__", None)
    if not isinstance(paths, list) or not paths:  # namespace paths recompute themselves
        return False
    return all(isinstance(p, str) and _gone(p) for p in paths)


def _fresh_locations(package: str) -> list[str] | None:
    """``package``'s folders from the first live ``sys.path`` entry that has it."""
    parts = package.split(".")
    for entry in sys.path:
        if not isinstance(entry, str) or _gone(entry or "."):
            continue
        locations: list[str] | None = [entry]
        for depth in range(1, len(parts) + 1):
            found = importlib.machinery.PathFinder.find_spec(".".join(parts[:depth]), locations)
            locations = None if found is None else found.submodule_search_locations
            if locations is None:
                break
        if locations:
            return list(locations)
    return None


def _repoint(top: str) -> None:
    """Point every loaded, stale package of ``top`` to its folders on ``sys.path``."""
    for name, module in sorted(sys.modules.items()):
        if (name == top or name.startswith(top + ".")) and _stale(module):
            fresh = _fresh_locations(name)
            if fresh is not None:
                module.__path__ = fresh
                if module.__spec__ is not None:
                    module.__spec__.submodule_search_locations = fresh


class StalePackageFinder(importlib.abc.MetaPathFinder):
    """Finds submodules of packages whose folders were deleted on the current ``sys.path``.

    ``loaded``: the fingerprint of the ``streaming_agents`` copy loaded here (None: unknown).
    """

    def __init__(self, loaded: str | None) -> None:
        self.loaded = loaded
        setattr(self, _MARK, True)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        parent = fullname.rpartition(".")[0]
        if not parent or path is None or not _stale(sys.modules.get(parent)):
            return None
        fresh = _fresh_locations(parent)
        if fresh is None:
            return None
        top = fullname.partition(".")[0]
        self._check(top)
        with _lock:
            _repoint(top)
        return importlib.machinery.PathFinder.find_spec(fullname, fresh)

    def _check(self, top: str) -> None:
        if top != PACKAGE:
            if top not in _warned:
                _warned.add(top)
                log.warning(
                    "%s was imported by an earlier job of this TaskManager from a folder since "
                    "deleted; its new modules come from this job's copy, those already imported "
                    "stay the earlier job's (versions not compared)",
                    top,
                )
            return
        fresh = _fresh_locations(PACKAGE)
        shipped = fingerprint(fresh[0]) if fresh else None
        if self.loaded is not None and shipped is not None and shipped != self.loaded:
            raise ShippedCopyMismatch(
                f"this TaskManager's Python already runs {PACKAGE} {self.loaded} (from an "
                f"earlier job); this job ships a different copy ({shipped}) and would run a "
                "mix of both: restart the TaskManagers, or install the package on the "
                "workers and submit with --ship none"
            )


def _loaded_fingerprint() -> tuple[str | None, ModuleType | None]:
    package = sys.modules.get(PACKAGE)
    paths = getattr(package, "__path__", None) or []
    return (fingerprint(paths[0]) if paths else None), package


def install() -> None:
    """Add the finder to ``sys.meta_path`` once per interpreter; warn about a differing copy.

    Called from ``open()`` of functions that run in a TaskManager (cheap after the first
    call: a hash of ~140 small files the first time, a walk of ``sys.path`` after).
    """
    with _lock:
        finder = next((f for f in sys.meta_path if getattr(f, _MARK, False)), None)
        if finder is None:
            loaded, _ = _loaded_fingerprint()
            finder = StalePackageFinder(loaded)
            sys.meta_path.append(finder)
    _warn_if_other_copy(getattr(finder, "loaded", None))


def _warn_if_other_copy(loaded: str | None) -> None:
    """One WARNING per copy of the package on ``sys.path`` that differs from the loaded one."""
    if loaded is None:
        return
    for entry in sys.path:
        folder = os.path.join(entry or ".", PACKAGE)
        if folder in _warned or not os.path.isfile(os.path.join(folder, "__init__.py")):
            continue
        _warned.add(folder)
        other = fingerprint(folder)
        if other is not None and other != loaded:
            log.warning(
                "%s loaded in this TaskManager's Python by an earlier job (%s) differs from "
                "the copy at %s (%s): this job runs the earlier job's modules; restart the "
                "TaskManagers to run the shipped copy",
                PACKAGE,
                loaded,
                folder,
                other,
            )
