"""The agent registry: which jobs exist, which agents they run, which topics link them.

Every deployable job is a Python package in a folder under ``jobs/`` (shipped in
the wheel as ``streaming_agents/_jobs``; or any folder given by path) with a
``spec.py`` module that declares ``JOB``, a :class:`JobSpec`:

* the job's topics by *role* (``{"claims": "claims", "decisions": "claims-decisions"}``):
  roles are what the code refers to, names are defaults that ``run``/``submit``
  can override (``--topic decisions=my-decisions``);
* its agents (:class:`AgentDecl`: name, version, input and output roles);
* ``build(env, ctx)``: adds the job graph to a ``StreamExecutionEnvironment``
  for a :class:`JobContext` (broker, model, resolved topics, bounded or not...);
* optionally ``sample(n, seed)``: deterministic sample records
  (:class:`SampleRecord`), and ``fake_rules()``: fake-LLM rules answering them.

Agents of different jobs talk through topics: an agent whose input topic is
another agent's output topic consumes what that one emits
(:func:`links`; e.g. claims-triage -> claims-decisions -> claims-compliance).

Job packages are imported by location under their folder name (``jobs`` may be
shadowed on ``sys.path``, e.g. by ``tests/jobs``), so imports inside a job
package are relative.  Nothing here imports PyFlink.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

from streaming_agents.agent import ModelSpec
from streaming_agents.errors import ConfigError

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment

    from streaming_agents.connectors.security import KafkaSecurity
    from streaming_agents.llm.journal import Journal

__all__ = [
    "JOBS_DIR_ENV",
    "AgentDecl",
    "AgentInfo",
    "JobContext",
    "JobEntry",
    "JobSpec",
    "Link",
    "SampleRecord",
    "agents",
    "discover",
    "jobs_dir",
    "links",
    "load_job",
]

JOBS_DIR_ENV = "STREAMING_AGENTS_JOBS_DIR"
"""Overrides where jobs are discovered (default: the shipped jobs, see :func:`jobs_dir`)."""
PACKAGED_JOBS = Path(__file__).resolve().parent / "_jobs"
"""Where a wheel carries the repository's ``jobs/`` (setup.py copies them at build time)."""

SPEC_MODULE = "spec"


@dataclass(frozen=True)
class AgentDecl:
    """An agent a job runs: identity and the topic *roles* it reads and writes."""

    name: str
    version: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class SampleRecord:
    """One sample record for the topic with role ``role`` (``key`` may be None)."""

    role: str
    key: str | None
    value: str


@dataclass
class JobContext:
    """What a job's ``build`` gets: where to read and write, which model, how to run."""

    bootstrap: str
    model: ModelSpec
    topics: Mapping[str, str]
    bounded: bool = False
    group_id: str | None = None
    journal: Journal | str | None = None
    """The journal: a URI resolved on the workers (``--journal``), an object, or None."""
    capacity: int = 100
    security: KafkaSecurity | None = None
    """Client-security setting of every Kafka client of the job (None: PLAINTEXT)."""

    def topic(self, role: str) -> str:
        """The topic name for ``role``."""
        try:
            return self.topics[role]
        except KeyError:
            raise ConfigError(
                f"no topic for role {role!r}; known roles: {', '.join(sorted(self.topics))}"
            ) from None


BuildFn = Callable[["StreamExecutionEnvironment", JobContext], None]
SampleFn = Callable[[int, int], list[SampleRecord]]
RulesFn = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class JobSpec:
    """A deployable job: topics by role, agents, and how to build its Flink graph.

    ``inputs`` lists the roles whose topics the job reads (``--sample``
    writes to them, and ``run`` creates every topic that is missing).
    """

    name: str
    description: str
    topics: Mapping[str, str]
    agents: tuple[AgentDecl, ...]
    build: BuildFn
    sample: SampleFn | None = None
    fake_rules: RulesFn | None = None
    inputs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a JobSpec needs a name")
        object.__setattr__(self, "topics", MappingProxyType(dict(self.topics)))
        roles = set(self.topics)
        for agent in self.agents:
            unknown = [r for r in (*agent.inputs, *agent.outputs) if r not in roles]
            if unknown:
                raise ConfigError(
                    f"job {self.name!r}: agent {agent.name!r} uses undeclared topic role(s) "
                    f"{', '.join(unknown)}"
                )
        if not self.inputs:
            declared = tuple(dict.fromkeys(r for a in self.agents for r in a.inputs))
            object.__setattr__(self, "inputs", declared)
        unknown = [r for r in self.inputs if r not in roles]
        if unknown:
            raise ConfigError(f"job {self.name!r}: unknown input role(s) {', '.join(unknown)}")

    def resolve_topics(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Role -> topic name, with ``overrides`` (unknown roles are a ConfigError)."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.topics))
        if unknown:
            raise ConfigError(
                f"job {self.name!r} has no topic role(s) {', '.join(unknown)}; "
                f"its roles: {', '.join(sorted(self.topics))}"
            )
        for role, name in overrides.items():
            if not name:
                raise ConfigError(f"empty topic name for role {role!r}")
        return {**self.topics, **overrides}


@dataclass(frozen=True)
class JobEntry:
    """A discovered job: its folder, the imported package and its spec."""

    name: str
    path: Path
    module: ModuleType
    spec: JobSpec


@dataclass(frozen=True)
class AgentInfo:
    """An agent with its job and resolved topic names (what ``streaming-agents agents`` lists)."""

    name: str
    version: str
    job: str
    input_topics: tuple[str, ...]
    output_topics: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Link:
    """``producer`` writes ``topic``, which ``consumer`` reads."""

    producer: str
    topic: str
    consumer: str


def jobs_dir() -> Path:
    """Where jobs are discovered: ``$STREAMING_AGENTS_JOBS_DIR``, else the jobs the
    installed package ships (``streaming_agents/_jobs``), else ``<checkout>/jobs``."""
    override = os.environ.get(JOBS_DIR_ENV)
    if override:
        return Path(override).resolve()
    if PACKAGED_JOBS.is_dir():
        return PACKAGED_JOBS
    from streaming_agents.runtime.environment import repo_root

    return repo_root() / "jobs"


def _import_package(folder: Path) -> ModuleType:
    """Import ``folder`` (a package) under its folder name; reuse it if already imported."""
    name = folder.name
    if not name.isidentifier():
        raise ConfigError(f"job folder name {name!r} is not a Python identifier")
    init = folder / "__init__.py"
    existing = sys.modules.get(name)
    if existing is not None:
        origin = getattr(existing, "__file__", None)
        if origin is not None and Path(origin).resolve() == init.resolve():
            return existing
        raise ConfigError(
            f"cannot load job {folder}: a different module named {name!r} is already "
            f"imported ({origin}); rename the job folder"
        )
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import job package {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_folder(folder: Path) -> JobEntry:
    folder = folder.resolve()
    if not (folder / "__init__.py").is_file():
        raise ConfigError(f"{folder} is not a job package (no __init__.py)")
    if not (folder / f"{SPEC_MODULE}.py").is_file():
        raise ConfigError(
            f"job {folder.name!r} has no {SPEC_MODULE}.py declaring JOB = JobSpec(...) "
            "(see streaming_agents/registry.py)"
        )
    package = _import_package(folder)
    spec_module = importlib.import_module(f"{package.__name__}.{SPEC_MODULE}")
    job = getattr(spec_module, "JOB", None)
    if not isinstance(job, JobSpec):
        raise ConfigError(f"{folder / SPEC_MODULE}.py must define JOB = JobSpec(...)")
    return JobEntry(name=folder.name, path=folder, module=package, spec=job)


def discover(root: Path | str | None = None) -> list[JobEntry]:
    """Every job package (a folder with ``__init__.py`` and ``spec.py``) under ``root``."""
    base = Path(root).resolve() if root is not None else jobs_dir()
    if not base.is_dir():
        raise ConfigError(f"no jobs folder at {base} (set {JOBS_DIR_ENV})")
    found = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if (folder / "__init__.py").is_file() and (folder / f"{SPEC_MODULE}.py").is_file():
            found.append(_load_folder(folder))
    return found


def load_job(ref: str | Path, root: Path | str | None = None) -> JobEntry:
    """A job by folder path, by folder name under the jobs folder, or by its spec name."""
    text = str(ref)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "__init__.py").is_file():
        return _load_folder(path)
    base = Path(root).resolve() if root is not None else jobs_dir()
    candidate = base / text
    if os.sep not in text and candidate.is_dir():
        return _load_folder(candidate)
    if os.sep not in text and base.is_dir():
        for entry in discover(base):
            if entry.spec.name == text:
                return entry
    known = []
    if base.is_dir():
        known = sorted(p.name for p in base.iterdir() if (p / "__init__.py").is_file())
    hint = f"; jobs under {base}: {', '.join(known)}" if known else ""
    raise ConfigError(f"no job {text!r} (a folder under {base} or a path to one){hint}")


def agents(entries: Sequence[JobEntry]) -> list[AgentInfo]:
    """Every agent of ``entries`` with its default topic names."""
    rows = []
    for entry in entries:
        topics = entry.spec.topics
        for agent in entry.spec.agents:
            rows.append(
                AgentInfo(
                    name=agent.name,
                    version=agent.version,
                    job=entry.name,
                    input_topics=tuple(topics[r] for r in agent.inputs),
                    output_topics=tuple(topics[r] for r in agent.outputs),
                    description=agent.description,
                )
            )
    return rows


def links(infos: Sequence[AgentInfo]) -> list[Link]:
    """Agent-to-agent links: an output topic of one agent that another agent reads."""
    found = []
    for producer in infos:
        for topic in producer.output_topics:
            for consumer in infos:
                if consumer is not producer and topic in consumer.input_topics:
                    found.append(Link(producer.name, topic, consumer.name))
    return found
