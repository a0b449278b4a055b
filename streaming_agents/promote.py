"""Promote an agent version to production, or roll it back, through a savepoint.

A switch on a Flink cluster (its REST API) goes:

1. find production: the one RUNNING job named ``<job>`` or ``<job>@<version>``
   (or the job id given);
2. **stop it with a savepoint** (``POST /jobs/<id>/stop``, ``drain: false``):
   the savepoint is synchronous -- the job's exactly-once sinks commit the
   transactions holding every output up to it, its Kafka source records the
   offsets it had reached, the agent operator every key's memory and the
   events it had accepted but not answered; then the job ends FINISHED and
   reads nothing more;
3. start the other version from that savepoint (``flink run -s SAVEPOINT -n``,
   through ``submit``), named ``<job>@<version>``: the same job graph (every
   version of a job has the same operators and uids), so its source resumes
   at the saved offsets in the same consumer group, its sinks take over the
   transactional ids and its agent reads each key's memory
   (``Memory.migrate`` upgrades an older schema); ``-n`` skips state of
   operators the new version no longer has.

Exactly once across the switch: every input before the saved offsets was
answered by the old version and committed at the savepoint (or is in the
saved queue, answered by the new one); every input after them is read by the
new version only.  Nothing is read twice, nothing skipped.

**Memory schemas across a switch** (:func:`memory_switch_problem`, checked
before production is stopped when the job declares its versions' memory
classes as ``VERSION_MEMORY``): a version whose memory schema is newer reads
the old documents through its ``migrate`` (which must be overridden); a
version whose schema is *older* -- a rollback after a promotion that changed
the schema -- would meet documents it cannot read, so the switch is refused
unless its memory class declares the newer schema in ``DOWNGRADES_FROM`` (a
``ClassVar`` tuple; its ``migrate`` then turns those documents back).  The
refusal names the other way back: ``rollback --from`` the savepoint the
promotion took (``restore_from``), which restores the old memory *and the
old offsets*: the inputs since that promotion are answered again by the old
version (a second output for each, not exactly once) and the memory built
since is lost.

If the new version cannot be started, the old one is started again from the
same savepoint, and the error is raised.  Each switch is appended to
``promotions.jsonl`` in the savepoint folder; ``rollback`` without a version
goes back to the version the last promotion replaced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streaming_agents.errors import ConfigError
from streaming_agents.flink_rest import FlinkRest

if TYPE_CHECKING:
    from streaming_agents.memory import Memory

__all__ = [
    "HISTORY_FILE",
    "FlinkRest",
    "Switch",
    "check_memory_switch",
    "last_promotion",
    "memory_switch_problem",
    "production_job",
    "switch_version",
    "version_of",
]

HISTORY_FILE = "promotions.jsonl"


def version_of(job_name: str) -> str:
    """The version in a job name ``<job>@<version>`` (``""``: the job's default)."""
    return job_name.rpartition("@")[2] if "@" in job_name else ""


def production_job(rest: FlinkRest, name: str, job_id: str | None = None) -> dict[str, Any]:
    """The RUNNING job named ``name`` or ``name@<version>`` (or ``job_id``)."""
    running = [j for j in rest.jobs() if j.get("state") == "RUNNING"]
    if job_id is not None:
        found = [j for j in running if j["jid"] == job_id]
    else:
        found = [j for j in running if j["name"] == name or j["name"].startswith(f"{name}@")]
    if len(found) == 1:
        return found[0]
    if not found:
        what = f"job {job_id}" if job_id else f"job named {name!r} or {name}@VERSION"
        raise ConfigError(f"no RUNNING {what} on {rest.url}")
    ids = ", ".join(f"{j['jid']} ({j['name']})" for j in found)
    raise ConfigError(f"several RUNNING jobs named {name!r}: {ids}; pick one with --job-id")


@dataclass(frozen=True)
class Switch:
    """One promotion or rollback, as recorded in ``promotions.jsonl``."""

    action: str
    job: str
    from_job_id: str
    from_version: str
    savepoint: str
    to_version: str
    to_job_id: str
    at: float
    seconds: float
    restored_from: str = ""

    def describe(self) -> str:
        old = self.from_version or "default"
        new = f"{self.job}@{self.to_version or 'default'} (job {self.to_job_id}) RUNNING"
        head = (
            f"{self.action}: {self.job}@{old} (job {self.from_job_id}) stopped with savepoint "
            f"{self.savepoint}; "
        )
        if self.restored_from:
            return head + (
                f"{new} from the earlier savepoint {self.restored_from}: the inputs since it "
                f"are answered again ({self.seconds:.1f} s)"
            )
        return head + f"{new} from it, reading on from its offsets ({self.seconds:.1f} s)"


def last_promotion(savepoint_dir: Path, job: str) -> Switch | None:
    """The last ``promote`` of ``job`` recorded in ``savepoint_dir`` (None if none)."""
    history = savepoint_dir / HISTORY_FILE
    if not history.is_file():
        return None
    found = None
    for line in history.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("job") == job and entry.get("action") == "promote":
            found = Switch(**entry)
    return found


Submit = Callable[[str, str], str]
"""``submit(version, savepoint) -> job id``: start ``version`` from ``savepoint``."""

Check = Callable[[str, str], None]
"""``check(running version, new version)``: raise to refuse the switch before anything stops."""


def _overrides_migrate(memory: type[Memory]) -> bool:
    from streaming_agents.memory import Memory

    return memory.migrate.__func__ is not Memory.migrate.__func__  # type: ignore[attr-defined]


def memory_switch_problem(running: type[Memory], target: type[Memory]) -> str | None:
    """Why ``target``'s memory class cannot read what ``running``'s wrote (``None``: it can).

    Same schema: fine.  Newer target: its ``migrate`` must be overridden (the
    default reads only its own schema).  Older target: its class must list the
    running schema in ``DOWNGRADES_FROM`` (a ``ClassVar`` tuple of the newer
    schema versions its ``migrate`` turns back).
    """
    new, old = running.SCHEMA_VERSION, target.SCHEMA_VERSION
    if new == old:
        return None
    if old > new:
        if _overrides_migrate(target):
            return None
        return (
            f"{target.__name__} (schema {old}) would meet {running.__name__} documents of "
            f"schema {new} and does not override migrate to upgrade them"
        )
    if new in tuple(getattr(target, "DOWNGRADES_FROM", ())):
        return None
    return (
        f"the running memory ({running.__name__}, schema {new}) is newer than "
        f"{target.__name__}'s (schema {old}), and {target.__name__} does not declare that it "
        f"reads schema {new} (DOWNGRADES_FROM)"
    )


def check_memory_switch(
    memories: Mapping[str, type[Memory]],
    running: str,
    target: str,
    *,
    job: str,
    savepoint_dir: Path,
) -> None:
    """Refuse (:class:`ConfigError`) a switch whose target cannot read the running memory.

    ``memories`` maps version names to memory classes (a job's
    ``VERSION_MEMORY``); versions it does not list are not checked.  The error
    names the ways out, with the savepoint of ``job``'s last promotion to
    ``running`` when ``promotions.jsonl`` in ``savepoint_dir`` has one.
    """
    if running not in memories or target not in memories:
        return
    problem = memory_switch_problem(memories[running], memories[target])
    if problem is None:
        return
    last = last_promotion(savepoint_dir, job)
    earlier = (
        last.savepoint
        if last is not None and last.from_version == target and last.to_version == running
        else "SAVEPOINT"
    )
    raise ConfigError(
        f"{job}: cannot switch from version {running} to {target} in place: {problem}. "
        f"Production was not stopped. Either give version {target}'s memory class "
        f"DOWNGRADES_FROM = ({memories[running].SCHEMA_VERSION},) and a migrate that reads "
        f"those documents, or restore the memory version {target} had: `streaming-agents "
        f"rollback {job} --to {target} --from {earlier}` (the savepoint its promotion took; "
        f"the inputs since then are answered again by version {target}, and the memory built "
        "since is lost)"
    )


def switch_version(
    rest: FlinkRest,
    *,
    job: str,
    version: str,
    savepoint_dir: Path,
    submit: Submit,
    action: str = "promote",
    job_id: str | None = None,
    timeout_s: float = 300.0,
    check: Check | None = None,
    restore_from: str | None = None,
) -> Switch:
    """Stop production with a savepoint and start ``version`` from it (module doc).

    ``check(running, version)`` runs before anything is stopped (see
    :func:`check_memory_switch`); ``restore_from`` starts ``version`` from that
    earlier savepoint instead of the one just taken (no check then: that
    savepoint's memory is what ``version`` wrote before it was replaced).
    """
    started = time.monotonic()
    current = production_job(rest, job, job_id)
    old_version = version_of(current["name"])
    if old_version == version:
        raise ConfigError(
            f"{current['name']} (job {current['jid']}) already runs version {version}"
        )
    if check is not None and restore_from is None:
        check(old_version, version)
    savepoint_dir.mkdir(parents=True, exist_ok=True)
    location = rest.savepoint(
        current["jid"], savepoint_dir.resolve().as_uri(), stop=True, timeout_s=timeout_s
    )
    rest.wait_state(current["jid"], {"FINISHED"}, timeout_s)
    try:
        new_id = submit(version, restore_from or location)
        rest.wait_running(new_id, timeout_s)
    except Exception:
        # Production must not stay down: the old version goes on from the same savepoint.
        back = submit(old_version, location)
        rest.wait_state(back, {"RUNNING"}, timeout_s)
        raise
    record = Switch(
        action=action,
        job=job,
        from_job_id=current["jid"],
        from_version=old_version,
        savepoint=location,
        to_version=version,
        to_job_id=new_id,
        at=time.time(),
        seconds=time.monotonic() - started,
        restored_from=restore_from or "",
    )
    with (savepoint_dir / HISTORY_FILE).open("a", encoding="utf-8") as history:
        history.write(json.dumps(asdict(record)) + "\n")
    return record
