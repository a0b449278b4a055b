"""Jar lookup, checksum verification and the one-time fetch (streaming_agents/jars.py).

The fetch is tested against a real HTTP server holding a Maven-layout repository in a
temporary folder (``STREAMING_AGENTS_MAVEN_URL``), with the checkout's own jar folders and
``~/.m2`` hidden (``SA_REPO_ROOT`` and ``HOME`` point at empty folders).
"""

from __future__ import annotations

import http.server
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming_agents import jars
from streaming_agents.errors import InfrastructureError

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR = jars.locked_jars("flink")[0]


def _checkout_jar() -> Path:
    return ROOT / ".jars" / "flink" / CONNECTOR.file


class _Repo(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, *args: object) -> None:
        _Repo.requests.append(self.path)


@pytest.fixture
def maven(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Maven repository served over HTTP from ``tmp_path/repo``: (url, folder)."""
    folder = tmp_path / "repo"
    folder.mkdir()
    _Repo.requests = []
    handler = lambda *a, **k: _Repo(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def no_local_jars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hide the checkout's .jars and ~/.m2; returns the cache folder."""
    for name in (jars.JARS_DIR_ENV, jars.OFFLINE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SA_REPO_ROOT", str(tmp_path / "no-checkout"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(jars.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_missing_jar_is_downloaded_once_by_checksum(
    maven: tuple[str, Path], no_local_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, folder = maven
    target = folder / CONNECTOR.maven_path()
    target.parent.mkdir(parents=True)
    shutil.copyfile(_checkout_jar(), target)
    monkeypatch.setenv(jars.MAVEN_URL_ENV, url)
    found = jars.connector_jars()
    assert found == [no_local_jars / "jars" / "flink" / CONNECTOR.file]
    assert _Repo.requests == [f"/{CONNECTOR.maven_path()}"]
    assert jars.connector_jars() == found  # cached: no second request
    assert len(_Repo.requests) == 1


def test_a_download_with_other_bytes_is_refused_and_not_kept(
    maven: tuple[str, Path], no_local_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, folder = maven
    target = folder / CONNECTOR.maven_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the connector")
    monkeypatch.setenv(jars.MAVEN_URL_ENV, url)
    with pytest.raises(InfrastructureError, match="SHA-256"):
        jars.connector_jars()
    assert not list((no_local_jars / "jars" / "flink").iterdir())


def test_offline_and_missing_names_the_folder_to_fill(
    no_local_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jars.OFFLINE_ENV, "1")
    with pytest.raises(InfrastructureError, match=r"SA_JARS_DIR/flink/"):
        jars.connector_jars()


def test_unreachable_repository_is_one_clear_error(
    no_local_jars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(jars.MAVEN_URL_ENV, "http://127.0.0.1:9")
    with pytest.raises(InfrastructureError, match=r"cannot download .*SA_JARS_DIR"):
        jars.connector_jars()


def test_a_corrupt_jar_in_the_offline_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flink").mkdir()
    (tmp_path / "flink" / CONNECTOR.file).write_bytes(b"x" * CONNECTOR.size)
    monkeypatch.setenv(jars.JARS_DIR_ENV, str(tmp_path))
    with pytest.raises(InfrastructureError, match="does not match its pinned SHA-256"):
        jars.connector_jars()


def test_locks_pin_what_the_poms_ask_for() -> None:
    for jar_set, artifact in (("flink", "flink-sql-connector-kafka"), ("kafka", "kafka_2.13")):
        pom = (ROOT / "jvm" / jar_set / "pom.xml").read_text()
        locked = {j.artifact: j.version for j in jars.locked_jars(jar_set)}  # type: ignore[arg-type]
        block = pom[pom.index(f"<artifactId>{artifact}</artifactId>") :]
        version = re.search(r"<version>([^<]+)</version>", block)
        assert version is not None
        wanted = version.group(1)
        if wanted.startswith("${"):
            wanted = re.search(r"<kafka.version>([^<]+)<", pom).group(1)  # type: ignore[union-attr]
        assert locked[artifact] == wanted, (jar_set, locked[artifact], wanted)
