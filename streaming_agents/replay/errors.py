"""Errors of replays, shadow runs and comparisons (all user errors: exit code 2)."""

from __future__ import annotations

from streaming_agents.errors import UserError

__all__ = [
    "BadRange",
    "MissingTopic",
    "NoOverlap",
    "NotAuthorized",
    "ReplayError",
    "SchemaMismatch",
    "UnsafeTarget",
]


class ReplayError(UserError):
    """A replay, shadow run or comparison was asked for something that cannot work."""


class BadRange(ReplayError):
    """The replay range is invalid: from after to, in the future, beyond a partition, empty."""


class MissingTopic(ReplayError):
    """A topic named on the command line does not exist on the broker."""


class SchemaMismatch(ReplayError):
    """Records are not what was expected (agent outputs, JSON events with the key field)."""


class UnsafeTarget(ReplayError):
    """The shadow topic is the input topic, the production topic or holds production records."""


class NoOverlap(ReplayError):
    """The two topics share no input: nothing to compare."""


class NotAuthorized(ReplayError):
    """The Kafka principal may not read a topic or use a consumer group (the broker's ACLs)."""
