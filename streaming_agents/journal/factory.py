"""The one place that turns a journal or ledger setting into a backend.

Settings are URIs, carried in the job as strings and resolved where the work
runs (in the operator's ``open()``), so each worker's own environment and
files apply, never the submitting client's:

* ``sqlite:///path/file.sqlite`` -- one file; ``sqlite:///path/dir`` (no
  ``.sqlite``/``.db`` suffix) -- ``<dir>/<agent>.sqlite``; ``sqlite://`` --
  the default folder (:func:`default_state_dir` ``/journal``).
  Query: ``retention`` (seconds, default 7 days).
* ``kafka://host:9092[,host2:9092]/topic`` -- query: ``partitions`` (default
  32), ``lookback`` (seconds), ``retention`` (seconds), and ``kafka.<name>``
  for non-secret client settings.  Secret client settings (SASL passwords,
  key files) come from the worker, never from the job: its
  ``$STREAMING_AGENTS_KAFKA_SECURITY`` (the project's one client-security
  setting, a properties file whose secrets are references, resolved there;
  :mod:`streaming_agents.connectors.security`) and/or its
  ``$STREAMING_AGENTS_KAFKA_PROPERTIES`` (a JSON object of librdkafka
  settings, or ``@/path/to/file.json``), which wins.
* ``none`` -- no journal.

Every URI takes ``scope``: entries are written and found under
(job, agent, version), where job is ``scope`` if given, else what the job
named (the operator uid by default); ``scope=*`` reads every scope (a replay
of a production journal).

Reading a production journal (replays, time travel): :func:`open_reader`
opens the backend a URI names read-only -- nothing is created or written --
scoped to the URI's ``scope`` (production's job; every version of the agent)
or, without one, to every scope.  A Kafka reader reads a partition from the
URI's ``since`` (epoch milliseconds; default 0, everything retained).  A
:class:`JournalSpec` with ``read_from`` (a replay's) resolves to the run's own
journal layered over that reader (:mod:`~streaming_agents.journal.overlay`).
A plain path (no scheme) stands for ``sqlite://<absolute path>``.

With no URI in the job, the worker's ``$STREAMING_AGENTS_JOURNAL`` decides;
then ``$STREAMING_AGENTS_JOURNAL_DIR`` (a folder for SQLite files, the older
setting); then ``sqlite://``.  Budget ledgers follow the journal: a Kafka
journal ``.../topic`` keeps budgets in ``topic.budget``, a SQLite one in
``<agent>.budget.sqlite`` beside it; ``Budget.ledger`` (a URI) or the older
``Budget.ledger_path`` overrides.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from streaming_agents.errors import ConfigError
from streaming_agents.journal.base import ANY_VERSION, JournalScope, RequestLog, ResultCache
from streaming_agents.journal.files import default_state_dir
from streaming_agents.journal.ledger import Ledger
from streaming_agents.journal.null import NullJournal
from streaming_agents.journal.sqlite import SqliteJournal

__all__ = [
    "JournalSetting",
    "JournalSpec",
    "NullJournal",
    "SqliteJournal",
    "as_journal_uri",
    "check_journal_uri",
    "journal_uri",
    "ledger_uri",
    "open_journal",
    "open_ledger",
    "open_reader",
    "request_log",
    "resolve_journal",
]

ANY_SCOPE = "*"

# ``SqliteJournal`` and ``NullJournal`` are also public names (``streaming_agents``
# exports them through ``llm/journal.py``) for code that builds a journal object
# directly; everything in the package opens journals through the functions below.


@dataclass(frozen=True)
class JournalSpec:
    """What a job carries about its journal: a URI or ``None`` (decided on the worker)."""

    uri: str | None
    job: str
    lookback_s: float | None = None
    read_from: str | None = None
    """A production journal's URI to answer from, read-only (a replay's spec)."""


JournalSetting = ResultCache | JournalSpec | str | None
"""What ``run_agent`` and the operator accept: a journal object, a spec, a URI or nothing."""


@dataclass(frozen=True)
class _Parsed:
    scheme: str
    location: str
    path: str
    query: dict[str, str]


def _parse(uri: str) -> _Parsed:
    if uri.strip().lower() in ("none", "null", "off"):
        return _Parsed("none", "", "", {})
    parts = urlsplit(uri)
    if parts.scheme not in ("sqlite", "kafka"):
        raise ConfigError(f"journal URI {uri!r}: expected sqlite://..., kafka://... or none")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return _Parsed(parts.scheme, parts.netloc, parts.path, query)


def as_journal_uri(setting: str) -> str:
    """``setting`` as a journal URI: a URI as it is, a plain path as ``sqlite://<abs path>``."""
    text = setting.strip()
    if not text:
        raise ConfigError("an empty journal setting: give a URI (sqlite://, kafka://, none)")
    if "://" in text or text.lower() in ("none", "null", "off"):
        return text
    return f"sqlite://{Path(text).expanduser().resolve()}"


def check_journal_uri(uri: str) -> None:
    """Raise :class:`ConfigError` for a URI no worker could open (checked on the client)."""
    parsed = _parse(uri)
    if parsed.scheme == "kafka" and (not parsed.location or not parsed.path.strip("/")):
        raise ConfigError(f"journal URI {uri!r}: expected kafka://bootstrap/topic")
    for name in ("retention", "lookback", "partitions"):
        _number(parsed, name, None)


def journal_uri(uri: str | None = None) -> str:
    """``uri``, else the worker's settings (see the module docstring)."""
    if uri:
        return uri
    configured = os.environ.get("STREAMING_AGENTS_JOURNAL")
    if configured:
        return configured
    folder = os.environ.get("STREAMING_AGENTS_JOURNAL_DIR")
    return f"sqlite://{Path(folder).expanduser().resolve()}" if folder else "sqlite://"


def _scope(parsed: _Parsed, job: str, agent: str, version: str) -> JournalScope | None:
    name = parsed.query.get("scope") or job
    return None if name == ANY_SCOPE else JournalScope(job=name, agent=agent, version=version)


def _number(parsed: _Parsed, name: str, default: float | None) -> float | None:
    raw = parsed.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"journal URI: {name}={raw!r} is not a number") from exc
    if value <= 0:
        raise ConfigError(f"journal URI: {name} must be positive, got {raw}")
    return value


def kafka_properties(parsed_query: Mapping[str, str]) -> dict[str, Any]:
    """The worker's ``$STREAMING_AGENTS_KAFKA_SECURITY``, ``kafka.*`` query settings,
    then the worker's ``$STREAMING_AGENTS_KAFKA_PROPERTIES``."""
    from streaming_agents.connectors.security import librdkafka_config, security_from_env

    props: dict[str, Any] = librdkafka_config(security_from_env())
    props.update(
        {k.removeprefix("kafka."): v for k, v in parsed_query.items() if k.startswith("kafka.")}
    )
    raw = os.environ.get("STREAMING_AGENTS_KAFKA_PROPERTIES", "").strip()
    if raw.startswith("@"):
        raw = Path(raw[1:]).expanduser().read_text()
    if raw:
        try:
            extra = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError("$STREAMING_AGENTS_KAFKA_PROPERTIES is not a JSON object") from exc
        if not isinstance(extra, dict):
            raise ConfigError("$STREAMING_AGENTS_KAFKA_PROPERTIES is not a JSON object")
        props.update(extra)
    return props


def _sqlite_path(parsed: _Parsed) -> Path:
    if not (parsed.path or parsed.location):
        return default_state_dir() / "journal"
    return Path(parsed.location + parsed.path).expanduser()


def _sqlite_file(parsed: _Parsed, agent: str, suffix: str) -> Path:
    """A file the URI names, or ``<folder>/<agent><suffix>`` for a folder."""
    path = _sqlite_path(parsed)
    return path if path.suffix in (".sqlite", ".db") else path / f"{agent}{suffix}"


def open_journal(
    uri: str | None,
    *,
    agent: str,
    version: str = "",
    job: str = "",
    lookback_s: float | None = None,
    properties: Mapping[str, Any] | None = None,
) -> ResultCache:
    """The journal backend ``uri`` names (``None``: the worker's settings)."""
    parsed = _parse(journal_uri(as_journal_uri(uri) if uri else None))
    scope = _scope(parsed, job or agent, agent, version)
    if parsed.scheme == "none":
        return NullJournal()
    if parsed.scheme == "sqlite":
        from streaming_agents.journal.sqlite import DEFAULT_RETENTION_S

        retention = _number(parsed, "retention", DEFAULT_RETENTION_S)
        assert retention is not None
        return SqliteJournal(
            _sqlite_file(parsed, agent, ".sqlite"), scope=scope, retention_s=retention
        )
    from streaming_agents.journal.kafka import (
        DEFAULT_LOOKBACK_S,
        DEFAULT_PARTITIONS,
        DEFAULT_RETENTION_MS,
        KafkaJournal,
    )

    topic = parsed.path.strip("/")
    if not parsed.location or not topic:
        raise ConfigError(f"journal URI {uri!r}: expected kafka://bootstrap/topic")
    retention = _number(parsed, "retention", DEFAULT_RETENTION_MS / 1000)
    lookback = _number(parsed, "lookback", lookback_s or DEFAULT_LOOKBACK_S)
    partitions = _number(parsed, "partitions", DEFAULT_PARTITIONS)
    assert retention is not None and lookback is not None and partitions is not None
    props = {**kafka_properties(parsed.query), **dict(properties or {})}
    return KafkaJournal(parsed.location, topic, scope=scope, partitions=int(partitions),
                        lookback_s=lookback, retention_ms=int(retention * 1000),
                        properties=props)  # fmt: skip


def open_reader(
    uri: str,
    *,
    agent: str,
    version: str = ANY_VERSION,
    properties: Mapping[str, Any] | None = None,
) -> ResultCache:
    """The production journal ``uri`` names, read-only (see the module docstring).

    Its scope is the URI's ``scope`` (a job) with ``agent`` and ``version``
    (default: every version), or every scope without one.  ``properties``:
    librdkafka settings of a Kafka reader (a client's ``--kafka-security``),
    over the worker's.
    """
    parsed = _parse(as_journal_uri(uri))
    job = parsed.query.get("scope")
    scope = None if not job or job == ANY_SCOPE else JournalScope(job, agent, version)
    if parsed.scheme == "none":
        raise ConfigError("a production journal to read from cannot be 'none'")
    if parsed.scheme == "sqlite":
        return SqliteJournal(_sqlite_file(parsed, agent, ".sqlite"), scope=scope, read_only=True)
    from streaming_agents.journal.kafka import DEFAULT_PARTITIONS, KafkaJournal

    topic = parsed.path.strip("/")
    if not parsed.location or not topic:
        raise ConfigError(f"journal URI {uri!r}: expected kafka://bootstrap/topic")
    since = parsed.query.get("since", "0")
    if not since.isdigit():
        raise ConfigError(f"journal URI: since={since!r} is not epoch milliseconds")
    partitions = _number(parsed, "partitions", DEFAULT_PARTITIONS)
    assert partitions is not None
    return KafkaJournal(parsed.location, topic, scope=scope, partitions=int(partitions),
                        properties={**kafka_properties(parsed.query), **dict(properties or {})},
                        read_only=True,
                        since_ms=int(since))  # fmt: skip


def _replay_journal(spec: JournalSpec, read_from: str, agent: str, version: str) -> ResultCache:
    from streaming_agents.journal.overlay import ReplayJournal

    own = open_journal(spec.uri, agent=agent, version=version, job=spec.job)
    own_log = request_log(own)
    if own_log is None:
        own.close()
        raise ConfigError(f"a replay's own journal must keep a request log, not {spec.uri!r}")
    return ReplayJournal(own, own_log, open_reader(read_from, agent=agent))


def resolve_journal(journal: JournalSetting, *, agent: str, version: str) -> ResultCache:
    """On the worker: a journal object as given, or the backend a spec/URI names."""
    if isinstance(journal, JournalSpec):
        if journal.read_from is not None:
            return _replay_journal(journal, journal.read_from, agent, version)
        return open_journal(
            journal.uri, agent=agent, version=version, job=journal.job,
            lookback_s=journal.lookback_s,
        )  # fmt: skip
    if journal is None or isinstance(journal, str):
        return open_journal(journal, agent=agent, version=version)
    return journal


def request_log(journal: ResultCache) -> RequestLog | None:
    """The journal's request log, if its backend keeps one."""
    return journal if isinstance(journal, RequestLog) else None


def _uri_of(journal: JournalSetting) -> str | None:
    """The URI a journal setting or an open backend stands for (``None``: the default)."""
    from streaming_agents.journal.kafka import KafkaJournal
    from streaming_agents.journal.overlay import ReplayJournal

    if isinstance(journal, ReplayJournal):
        journal = journal.own
    if isinstance(journal, JournalSpec):
        return journal.uri
    if isinstance(journal, SqliteJournal):
        return f"sqlite://{Path(journal.path).resolve()}"
    if isinstance(journal, KafkaJournal):
        return f"kafka://{journal.bootstrap}/{journal.topic}"
    return journal if isinstance(journal, str) else None


def ledger_uri(journal: JournalSetting, explicit: str | None) -> str:
    """The budget ledger's URI: ``explicit``, else one beside the journal (see module doc)."""
    if explicit:
        return explicit
    configured = os.environ.get("STREAMING_AGENTS_LEDGER")
    if configured:
        return configured
    uri = journal_uri(_uri_of(journal))
    parsed = _parse(uri)
    if parsed.scheme == "kafka":
        topic = parsed.path.strip("/")
        return f"kafka://{parsed.location}/{topic}.budget"
    if parsed.scheme == "sqlite":
        path = _sqlite_path(parsed)
        folder = path.parent if path.suffix in (".sqlite", ".db") else path
        return f"sqlite://{folder}"
    return "sqlite://"


def open_ledger(uri: str, *, agent: str, window_s: int) -> Ledger:
    """The budget ledger backend ``uri`` names."""
    parsed = _parse(uri)
    if parsed.scheme == "kafka":
        from streaming_agents.journal.ledger_kafka import KafkaLedger

        topic = parsed.path.strip("/")
        if not parsed.location or not topic:
            raise ConfigError(f"ledger URI {uri!r}: expected kafka://bootstrap/topic")
        props = kafka_properties(parsed.query)
        return KafkaLedger(parsed.location, topic, window_s=window_s, properties=props)
    if parsed.scheme == "none":
        raise ConfigError("a budget needs a ledger: give Budget(ledger='sqlite://...' or kafka)")
    from streaming_agents.journal.ledger_sqlite import SqliteLedger

    return SqliteLedger(_sqlite_file(parsed, agent, ".budget.sqlite"))
