"""Schema evolution rules: every event schema stays BACKWARD_TRANSITIVE compatible.

BACKWARD_TRANSITIVE: a reader using the current schema can read data written with *every*
earlier version, so consumers can be upgraded before producers and old topics stay readable.
The check is the ``avro`` package's reader/writer compatibility checker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import catalog
from schemas.events import EVENT_TYPES


@dataclass(frozen=True)
class Incompatibility:
    event_type: str
    writer_version: int
    problems: list[str]

    def __str__(self) -> str:
        return (
            f"{self.event_type}: the current schema cannot read data written with "
            f"v{self.writer_version}: {'; '.join(self.problems)}"
        )


def reader_can_read(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Why a reader with schema ``reader`` cannot read data written with ``writer`` (or [])."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return sorted(
        f"{kind.value} at {location}: {message}"
        for kind, location, message in zip(
            result.incompatibilities,
            sorted(result.locations),
            sorted(result.messages),
            strict=False,
        )
    ) or [str(result.compatibility)]


def check_backward_transitive(event_type: str) -> list[Incompatibility]:
    """Every historical version of ``event_type`` the current schema cannot read."""
    reader = catalog.current(event_type).raw
    found = []
    for old in catalog.history(event_type):
        problems = reader_can_read(reader, old.raw)
        if problems:
            found.append(Incompatibility(event_type, old.version, problems))
    return found


def check_all() -> list[Incompatibility]:
    return [i for t in EVENT_TYPES for i in check_backward_transitive(t)]
