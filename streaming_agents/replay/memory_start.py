"""Where a replay's memory starts: empty, or production's state in a savepoint.

A replay on production's memory restores its Flink job from a production
savepoint (or retained checkpoint):

* the agent operator runs under production's uid (``agent-<name>``, the
  pipeline builder's default) so each key's ``memory`` state -- a JSON
  document -- comes back; the candidate reads it through its own memory class,
  so :meth:`~streaming_agents.memory.Memory.migrate` upgrades documents of an
  older ``schema_version``;
* ``execution.state-recovery.ignore-unclaimed-state`` (allowNonRestoredState)
  skips every operator the replay does not have (production's sinks...);
* ``table.exec.uid.generation: ALWAYS`` with a replay-specific
  ``table.exec.uid.format`` gives the replay's Table API Kafka source a uid of
  its own: without it both jobs' sources get the same topology-derived uid
  and the replay would restore production's source (its partitions and
  offsets, unbounded) instead of reading its own range.

**Where the replay reads from.**  Memory and input line up only when the
replay starts where production's source stood when the savepoint was taken:
the default start is therefore the offsets of the replayed topic recorded in
the savepoint itself (:func:`savepoint_offsets`), not a time and not the
consumer group's committed offsets (which move on after a savepoint).  Those
records were not yet read by production when the savepoint was taken, so no
event is answered twice and none is skipped.

Events production had accepted but not yet answered (the agent's ``queue``
state) are restored with the memory and answered by the replay too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from streaming_agents.errors import ConfigError

__all__ = ["MAX_SCANNED_BYTES", "MemoryStart", "savepoint_dir", "savepoint_offsets"]

MAX_SCANNED_BYTES = 256 * 1024 * 1024
"""Files of a savepoint larger than this are not scanned for source offsets (keyed state)."""

# KafkaPartitionSplitSerializer: writeUTF(topic), writeInt(partition), writeLong(offset),
# writeLong(stopping offset); the source reader's state wraps it with
# SimpleVersionedSerialization (int version, int length).
_SPLIT_TAIL = 4 + 8 + 8


def savepoint_dir(location: str | Path) -> Path:
    """The local folder of a savepoint or checkpoint (a path, ``file://`` URI or ``_metadata``)."""
    text = str(location)
    parsed = urlparse(text)
    if parsed.scheme not in ("", "file"):
        raise ConfigError(
            f"savepoint {text!r}: only local paths and file:// URIs are supported "
            "(copy the savepoint where this machine can read it)"
        )
    path = Path(unquote(parsed.path) if parsed.scheme == "file" else text).expanduser()
    if path.name == "_metadata":
        path = path.parent
    if not (path / "_metadata").is_file():
        raise ConfigError(f"{path} is not a savepoint or checkpoint (no _metadata in it)")
    return path.resolve()


def savepoint_offsets(location: str | Path, topic: str) -> dict[int, int]:
    """Next offset to read per partition of ``topic``, as production's Kafka source saved it.

    The splits of a ``KafkaSource`` (the Table API connector uses one) are found
    in the savepoint's files by their serialized form.  The split enumerator's
    state holds each partition's initial offset (or a negative sentinel) and
    the reader's state its position, which is never behind: the largest offset
    per partition is the reader's.  Raises :class:`ConfigError` when the
    savepoint has no split of ``topic``.
    """
    folder = savepoint_dir(location)
    name = topic.encode("utf-8")
    header = struct.pack(">H", len(name)) + name
    framed = struct.pack(">i", len(header) + _SPLIT_TAIL) + header
    found: dict[int, int] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.stat().st_size > MAX_SCANNED_BYTES:
            continue
        data = path.read_bytes()
        start = data.find(framed)
        while start >= 0:
            at = start + len(framed)
            if at + _SPLIT_TAIL <= len(data):
                partition, offset = struct.unpack_from(">iq", data, at)
                if partition >= 0:
                    found[partition] = max(found.get(partition, offset), offset)
            start = data.find(framed, start + 1)
    usable = {p: o for p, o in found.items() if o >= 0}
    if not usable:
        raise ConfigError(
            f"savepoint {folder} holds no Kafka source position for topic {topic!r}: "
            "is it a savepoint of the job that reads it? (or give --from)"
        )
    return dict(sorted(usable.items()))


@dataclass(frozen=True)
class MemoryStart:
    """How a replay's keys start: ``empty`` or ``savepoint`` (production's memory)."""

    kind: str = "empty"
    savepoint: str | None = None
    agent_uid: str | None = None
    offsets: dict[int, int] = field(default_factory=dict)

    @staticmethod
    def from_savepoint(location: str | Path, agent_name: str) -> MemoryStart:
        """Production's memory in the savepoint at ``location`` (checked to be one)."""
        folder = savepoint_dir(location)
        return MemoryStart("savepoint", str(folder), f"agent-{agent_name}")

    @staticmethod
    def from_dict(data: Any) -> MemoryStart | None:
        """The memory start a shadow mark carries (:meth:`to_dict`); ``None`` if unreadable."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return None
        raw = data.get("offsets")
        try:
            offsets = {int(p): int(o) for p, o in (raw or {}).items()}
        except (AttributeError, TypeError, ValueError):
            offsets = {}
        savepoint, uid = data.get("savepoint"), data.get("agent_uid")
        return MemoryStart(
            data["kind"],
            None if savepoint is None else str(savepoint),
            None if uid is None else str(uid),
            offsets,
        )

    def with_offsets(self, offsets: dict[int, int]) -> MemoryStart:
        return MemoryStart(self.kind, self.savepoint, self.agent_uid, dict(offsets))

    @property
    def restores(self) -> bool:
        return self.kind == "savepoint"

    def flink_config(self, run_id: str) -> dict[str, str]:
        """Configuration that restores the replay job from the savepoint (nothing when empty)."""
        if self.savepoint is None:
            return {}
        safe = "".join(ch if ch.isalnum() else "-" for ch in run_id)
        return {
            "execution.state-recovery.path": Path(self.savepoint).as_uri(),
            "execution.state-recovery.ignore-unclaimed-state": "true",
            "table.exec.uid.generation": "ALWAYS",
            "table.exec.uid.format": f"replay-{safe}-<id>_<transformation>",
        }

    def describe(self) -> str:
        if self.kind == "empty":
            return "empty (every key starts a new conversation)"
        if not self.restores:  # a kind this version does not know (a newer writer's mark)
            return f"{self.kind}" + (f" ({self.savepoint})" if self.savepoint else "")
        where = ",".join(f"p{p}={o}" for p, o in sorted(self.offsets.items()))
        return (
            f"production's, from savepoint {self.savepoint} (agent uid {self.agent_uid}"
            + (f"; input from its offsets {where}" if where else "")
            + ")"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "savepoint": self.savepoint,
            "agent_uid": self.agent_uid,
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
        }
