"""The JVM jars PyFlink jobs need: found, verified by checksum, fetched once if missing.

Two jar sets, each pinned by a lock file in ``streaming_agents/_jars/`` (Maven
coordinates, size and SHA-256 of every jar; ``make jars-lock`` writes them from
``jvm/*/pom.xml``):

* ``flink`` -- the Flink Kafka connector (11 MB) every job needs.  **It ships inside
  the wheel** (``streaming_agents/_jars/flink/``), so an installed package runs jobs
  with no network, no repository and no ``make jars``; a cluster job gets it through
  ``pipeline.jars``.  :func:`add_connector_jars` puts it on a user's own environment.
* ``kafka`` -- the single-node Kafka broker (46 jars, 43 MB) that ``streaming-agents
  demo`` and the tests start locally.  Too big to ship for a demo: fetched once from
  Maven Central into the user cache on first use.

Each jar is looked for, in order, in ``$SA_JARS_DIR/<set>/`` (a folder you fill
yourself: the offline path), the package's ``_jars/<set>/`` (the wheel), the source
checkout's ``.jars/<set>/`` (``make jars``) and the user cache
(``$STREAMING_AGENTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/streaming-agents``, else
``~/.cache/streaming-agents``).  A jar found nowhere is copied from the local Maven
repository (``~/.m2``) or downloaded from ``$STREAMING_AGENTS_MAVEN_URL`` (default
Maven Central) into the cache, unless ``STREAMING_AGENTS_OFFLINE=1``.  Every jar is
checked against its SHA-256 (once per process); a mismatch is an error, never skipped.
Nothing here imports PyFlink.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from streaming_agents.errors import ConfigError, InfrastructureError

__all__ = [
    "CACHE_ENV",
    "JARS_DIR_ENV",
    "MAVEN_URL_ENV",
    "OFFLINE_ENV",
    "LockedJar",
    "add_connector_jars",
    "broker_jars",
    "cache_dir",
    "connector_jar_uris",
    "connector_jars",
    "locked_jars",
    "resolve_jars",
]

JarSet = Literal["flink", "kafka"]
Env = TypeVar("Env")
JARS_DIR_ENV = "SA_JARS_DIR"
"""A folder holding ``flink/`` and/or ``kafka/`` jar folders, searched first."""
CACHE_ENV = "STREAMING_AGENTS_CACHE_DIR"
"""Where fetched jars are kept (default ``$XDG_CACHE_HOME/streaming-agents``)."""
MAVEN_URL_ENV = "STREAMING_AGENTS_MAVEN_URL"
"""The Maven repository jars are downloaded from (a mirror, or a local file server)."""
OFFLINE_ENV = "STREAMING_AGENTS_OFFLINE"
"""``1``: never download; a missing jar is an error saying where to put it."""
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
PACKAGE_JARS = Path(__file__).resolve().parent / "_jars"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockedJar:
    """One pinned jar: its Maven coordinates, file name, size and SHA-256."""

    group: str
    artifact: str
    version: str
    classifier: str
    file: str
    size: int
    sha256: str

    def maven_path(self) -> str:
        """The jar's path inside a Maven repository."""
        suffix = f"-{self.classifier}" if self.classifier else ""
        folder = f"{self.group.replace('.', '/')}/{self.artifact}/{self.version}"
        return f"{folder}/{self.artifact}-{self.version}{suffix}.jar"


@cache
def locked_jars(jar_set: JarSet) -> tuple[LockedJar, ...]:
    """The jars pinned for ``jar_set`` by ``streaming_agents/_jars/<set>.lock.json``."""
    path = PACKAGE_JARS / f"{jar_set}.lock.json"
    try:
        lock = json.loads(path.read_text())
        return tuple(LockedJar(**row) for row in lock["jars"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InfrastructureError(f"unreadable jar lock file {path}: {exc}") from exc


def cache_dir() -> Path:
    """The user cache fetched jars go to (created on first fetch)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "streaming-agents"


def _search_folders(jar_set: JarSet) -> list[Path]:
    from streaming_agents.runtime.environment import repo_root

    folders = []
    override = os.environ.get(JARS_DIR_ENV)
    if override:
        folders.append(Path(override).expanduser().resolve() / jar_set)
    folders.append(PACKAGE_JARS / jar_set)
    folders.append(repo_root() / ".jars" / jar_set)
    folders.append(cache_dir() / "jars" / jar_set)
    return folders


@cache
def _verified(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    """Whether the file at ``path`` (of this size and mtime) has this SHA-256."""
    del size, mtime_ns  # part of the cache key: a changed file is checked again
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == sha256


def _check(path: Path, jar: LockedJar) -> Path:
    stat = path.stat()
    if stat.st_size != jar.size or not _verified(path, stat.st_size, stat.st_mtime_ns, jar.sha256):
        raise InfrastructureError(
            f"{path} does not match its pinned SHA-256 ({jar.sha256[:12]}...): a corrupt or "
            "different jar; delete it (it is fetched again) or replace it"
        )
    return path


def resolve_jars(jar_set: JarSet, *, fetch: bool = True) -> list[Path]:
    """Every jar of ``jar_set``, verified; missing ones fetched into the cache when ``fetch``."""
    folders = _search_folders(jar_set)
    found: list[Path] = []
    missing: list[LockedJar] = []
    for jar in locked_jars(jar_set):
        path = next((f / jar.file for f in folders if (f / jar.file).is_file()), None)
        if path is None:
            missing.append(jar)
        else:
            found.append(_check(path, jar))
    if missing:
        if not fetch:
            raise InfrastructureError(_missing_message(jar_set, missing, folders))
        found.extend(_fetch(jar_set, missing, folders))
    return found


def _missing_message(jar_set: JarSet, missing: list[LockedJar], folders: list[Path]) -> str:
    names = ", ".join(j.file for j in missing[:3]) + (" ..." if len(missing) > 3 else "")
    where = ", ".join(str(f) for f in folders)
    return (
        f"{len(missing)} {jar_set} jar(s) not found ({names}); looked in {where}. Put them in "
        f"${JARS_DIR_ENV}/{jar_set}/, or allow the download from Maven Central "
        f"(unset {OFFLINE_ENV}); in a source checkout `make jars` fetches them"
    )


def _fetch(jar_set: JarSet, missing: list[LockedJar], folders: list[Path]) -> list[Path]:
    offline = os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}
    m2 = Path.home() / ".m2" / "repository"
    base = os.environ.get(MAVEN_URL_ENV) or MAVEN_CENTRAL
    target = cache_dir() / "jars" / jar_set
    local = [j for j in missing if (m2 / j.maven_path()).is_file()]
    remote = [j for j in missing if j not in local]
    if remote and offline:
        raise InfrastructureError(_missing_message(jar_set, remote, folders))
    target.mkdir(parents=True, exist_ok=True)
    if remote:
        megabytes = sum(j.size for j in remote) / 1e6
        log.warning(
            "fetching %d %s jar(s) (%.0f MB) from %s into %s (once)",
            len(remote),
            jar_set,
            megabytes,
            base,
            target,
        )
    paths = []
    for jar in missing:
        source = m2 / jar.maven_path()
        if jar in local:
            paths.append(_store(target, jar, lambda out, s=source: _copy(s, out)))
        else:
            url = f"{base.rstrip('/')}/{jar.maven_path()}"
            paths.append(_store(target, jar, lambda out, u=url: _download(u, out)))
    return paths


def _store(target: Path, jar: LockedJar, write: Any) -> Path:
    """Write ``jar`` through ``write(path)`` to a temporary file, verify it, move it in place."""
    fd, name = tempfile.mkstemp(prefix=f".{jar.file}.", dir=target)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        _check(tmp, jar)
        final = target / jar.file
        os.replace(tmp, final)  # atomic: a concurrent fetch of the same jar is harmless
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _copy(source: Path, out: Path) -> None:
    shutil.copyfile(source, out)


def _download(url: str, out: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, out.open("wb") as handle:
            shutil.copyfileobj(response, handle, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        raise InfrastructureError(
            f"cannot download {url} ({exc}); set {JARS_DIR_ENV} to a folder holding the jars "
            f"or {MAVEN_URL_ENV} to a reachable Maven mirror"
        ) from exc


# --------------------------------------------------------------------------- public helpers


def connector_jars() -> list[Path]:
    """The Flink Kafka connector jar(s), verified (shipped in the wheel)."""
    return resolve_jars("flink")


def connector_jar_uris() -> list[str]:
    """``file://`` URIs of :func:`connector_jars`, for ``pipeline.jars`` or ``env.add_jars``."""
    return [jar.as_uri() for jar in connector_jars()]


def broker_jars() -> list[Path]:
    """The Kafka broker's jars (fetched into the user cache on first use)."""
    return resolve_jars("kafka")


def add_connector_jars(env: Env) -> Env:
    """Add the Kafka connector jar to ``env`` (a Stream- or Table- ``Environment``).

    Call it right after creating your own environment, before building a Kafka
    source or sink: it loads the jar into this process's JVM (so PyFlink finds
    ``KafkaSource``) and adds it to ``pipeline.jars`` (so a cluster gets it).
    Jars already there are not added twice.  Returns ``env``.
    """
    uris = connector_jar_uris()
    if hasattr(env, "add_jars"):  # StreamExecutionEnvironment
        from pyflink.common import Configuration
        from pyflink.util.java_utils import get_j_env_configuration

        j_env = env._j_stream_execution_environment  # type: ignore[attr-defined]
        value = get_j_env_configuration(j_env).getString("pipeline.jars", None)
        present = set(Configuration.parse_list_value(value or ""))  # "a;b" or "['a', 'b']"
        missing = [uri for uri in uris if uri not in present]
        if missing:
            env.add_jars(*missing)
        return env
    if hasattr(env, "get_config"):  # TableEnvironment: its config loads the jars too
        table_config = env.get_config()
        current = [u for u in (table_config.get("pipeline.jars", "") or "").split(";") if u]
        table_config.set(
            "pipeline.jars", ";".join([*current, *(u for u in uris if u not in current)])
        )
        return env
    raise ConfigError(
        f"add_connector_jars needs a StreamExecutionEnvironment or TableEnvironment, "
        f"got {type(env).__name__}"
    )
