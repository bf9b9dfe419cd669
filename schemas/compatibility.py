"""Schema evolution rules: every event schema stays BACKWARD_TRANSITIVE compatible.

BACKWARD_TRANSITIVE: a reader using the current schema can read data written with *every*
earlier version, so consumers can be upgraded before producers and old topics stay readable.

The check follows the Avro specification's schema resolution rules over schemas parsed by the
``avro`` package, and reports each problem as one (kind, field path, reason) found together.
The ``avro`` package's own checker is not used for the report: it keeps its findings as a list
of kinds beside two *sets* (locations, messages), so which location goes with which message is
lost, and two problems with the same text collapse into one. It also ignores decimal scale and
precision, which the specification makes part of matching: bytes written at scale 3 and read at
scale 4 decode to a number ten times smaller without any error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import avro.schema
from avro.compatibility import SchemaIncompatibilityType as Kind

from schemas import catalog
from schemas.events import EVENT_TYPES

#: Writer type -> reader types it may be read as (the specification's promotions).
PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


@dataclass(frozen=True)
class Problem:
    """One reason a reader cannot read a writer's data, and the field it is about."""

    kind: Kind
    location: str  # field path: ``inputs[].unit_price``; ``/`` for the top-level record
    message: str

    def __str__(self) -> str:
        return f"{self.kind.value} at {self.location}: {self.message}"


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
    return sorted(str(p) for p in problems(reader, writer))


def problems(reader: dict[str, Any], writer: dict[str, Any]) -> list[Problem]:
    """Every problem reading ``writer``'s data with ``reader``, each with its own field path."""
    parsed_reader = avro.schema.parse(json.dumps(reader))
    parsed_writer = avro.schema.parse(json.dumps(writer))
    return list(_Resolver().check(parsed_reader, parsed_writer, ""))


class _Resolver:
    def __init__(self) -> None:
        # Named types already under way: a recursive schema meets itself again; the first
        # visit reports whatever is wrong with it.
        self._seen: set[tuple[int, int]] = set()

    def matches(self, reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
        return next(iter(_Resolver().check(reader, writer, "")), None) is None

    def check(
        self, reader: avro.schema.Schema, writer: avro.schema.Schema, path: str
    ) -> Iterator[Problem]:
        where = path or "/"
        if writer.type == "union":
            for branch in writer.schemas:  # type: ignore[attr-defined]
                if reader.type == "union":
                    if not any(self.matches(r, branch) for r in reader.schemas):  # type: ignore[attr-defined]
                        yield Problem(
                            Kind.missing_union_branch,
                            where,
                            f"reader union lacks the writer's {_describe(branch)}",
                        )
                else:
                    yield from self.check(reader, branch, path)
            return
        if reader.type == "union":
            if not any(self.matches(r, writer) for r in reader.schemas):  # type: ignore[attr-defined]
                yield Problem(
                    Kind.missing_union_branch,
                    where,
                    f"reader union lacks the writer's {_describe(writer)}",
                )
            return
        if reader.type in PRIMITIVES and writer.type in PRIMITIVES:
            if reader.type not in PROMOTIONS.get(writer.type, {writer.type}):
                yield _mismatch(reader, writer, where)
            else:
                yield from _decimals(reader, writer, where)
            return
        if reader.type != writer.type:
            yield _mismatch(reader, writer, where)
            return
        if reader.type in ("record", "enum", "fixed"):
            if not _same_name(reader, writer):
                yield Problem(
                    Kind.name_mismatch,
                    where,
                    f"reader {reader.fullname} is not the writer's {writer.fullname}",  # type: ignore[attr-defined]
                )
                return
            key = (id(reader), id(writer))
            if key in self._seen:
                return
            self._seen.add(key)
        if reader.type == "record":
            yield from self._record(reader, writer, path)
        elif reader.type == "enum":
            missing = [s for s in writer.symbols if s not in reader.symbols]  # type: ignore[attr-defined]
            if missing and reader.get_prop("default") not in reader.symbols:  # type: ignore[attr-defined]
                yield Problem(
                    Kind.missing_enum_symbols,
                    where,
                    f"reader lacks the writer's symbols {', '.join(missing)} and has no default",
                )
        elif reader.type == "fixed":
            if reader.size != writer.size:  # type: ignore[attr-defined]
                yield Problem(
                    Kind.fixed_size_mismatch,
                    where,
                    f"reader size {reader.size}, writer size {writer.size}",  # type: ignore[attr-defined]
                )
            else:
                yield from _decimals(reader, writer, where)
        elif reader.type == "array":
            yield from self.check(reader.items, writer.items, path + "[]")  # type: ignore[attr-defined]
        elif reader.type == "map":
            yield from self.check(reader.values, writer.values, path + "{}")  # type: ignore[attr-defined]

    def _record(
        self, reader: avro.schema.Schema, writer: avro.schema.Schema, path: str
    ) -> Iterator[Problem]:
        by_name = {f.name: f for f in writer.fields}  # type: ignore[attr-defined]
        for field in reader.fields:  # type: ignore[attr-defined]
            field_path = f"{path}.{field.name}" if path else field.name
            names = [field.name, *(field.get_prop("aliases") or [])]
            source = next((by_name[n] for n in names if n in by_name), None)
            if source is None:
                if not field.has_default:
                    yield Problem(
                        Kind.reader_field_missing_default_value,
                        field_path,
                        f"{field.name} is not in the writer's schema and has no default",
                    )
                continue
            yield from self.check(field.type, source.type, field_path)


def _same_name(reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
    if reader.fullname == writer.fullname or reader.name == writer.name:  # type: ignore[attr-defined]
        return True
    aliases = [str(a) for a in reader.get_prop("aliases") or []]  # type: ignore[attr-defined]
    return writer.fullname in aliases or writer.name in aliases  # type: ignore[attr-defined]


def _decimals(
    reader: avro.schema.Schema, writer: avro.schema.Schema, where: str
) -> Iterator[Problem]:
    """Decimals match only at the same scale and precision (the bytes carry neither)."""
    if reader.get_prop("logicalType") != "decimal" or writer.get_prop("logicalType") != "decimal":
        return
    shapes = [(s.get_prop("precision"), s.get_prop("scale") or 0) for s in (reader, writer)]
    if shapes[0] != shapes[1]:
        (rp, rs), (wp, ws) = shapes
        yield Problem(
            Kind.type_mismatch,
            where,
            f"reader decimal({rp}, {rs}) does not read the writer's decimal({wp}, {ws})",
        )


def _mismatch(reader: avro.schema.Schema, writer: avro.schema.Schema, where: str) -> Problem:
    return Problem(
        Kind.type_mismatch,
        where,
        f"reader type {_describe(reader)} cannot read the writer's {_describe(writer)}",
    )


def _describe(schema: avro.schema.Schema) -> str:
    if schema.type in ("record", "enum", "fixed"):
        return f"{schema.type} {schema.fullname}"  # type: ignore[attr-defined]
    return str(schema.type)


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
