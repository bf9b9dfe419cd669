"""The schema catalog: the Avro contract of every event type, current and historical.

``schemas/avro/<event_type>.avsc`` is the current schema of each event type;
``schemas/avro/history/<event_type>/v<N>.avsc`` keeps every published version (the current one
included), so decoders can resolve old data and the compatibility check can see the history.

The ``.avsc`` files are derived from the pydantic models by :func:`derive_avro_schema` and
committed; ``batteryloop schemas check`` (and the test suite) fails when they disagree, and
``batteryloop schemas write`` rewrites them after a model change.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID

import fastavro
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from schemas.events import EVENT_MODELS, Event

AVRO_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"
NAMESPACE = "batteryloop"


# --- deriving the Avro schema of a model ------------------------------------------------------


class _Deriver:
    """Walks a pydantic model and emits the equivalent Avro schema.

    Named types (records, enums) are defined at first use and referred to by name afterwards,
    as Avro requires within one schema.
    """

    def __init__(self) -> None:
        self.defined: set[str] = set()

    def model(self, cls: type[BaseModel]) -> Any:
        name = f"{NAMESPACE}.{cls.__name__}"
        if name in self.defined:
            return name
        self.defined.add(name)
        fields = [self.field(n, f) for n, f in cls.model_fields.items()]
        record: dict[str, Any] = {"type": "record", "name": name}
        if cls.__doc__:
            record["doc"] = " ".join(cls.__doc__.split())
        record["fields"] = fields
        return record

    def field(self, name: str, info: FieldInfo) -> dict[str, Any]:
        avro_type = self.type(info.annotation, list(info.metadata))
        out: dict[str, Any] = {"name": name, "type": avro_type}
        if info.description:
            out["doc"] = info.description
        extra = info.json_schema_extra
        if isinstance(extra, dict) and "confidential" in extra:
            out["confidential"] = extra["confidential"]
        if isinstance(avro_type, list) and avro_type[0] == "null":
            out["default"] = None
        elif name == "schema_version":
            out["default"] = info.default
        elif isinstance(info.default, Enum):
            # A field added later with a default: readers of older data fill it in.
            out["default"] = info.default.value
        return out

    def type(self, tp: Any, meta: list[Any]) -> Any:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            base, *more = get_args(tp)
            return self.type(base, meta + more)
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1 or len(get_args(tp)) != 2:
                raise TypeError(f"only 'X | None' unions map to Avro here, not {tp}")
            return ["null", self.type(members[0], [])]
        if origin is list:
            return {"type": "array", "items": self.type(get_args(tp)[0], [])}
        if origin is dict:
            return {"type": "map", "values": self.type(get_args(tp)[1], [])}
        if origin is Literal:
            return "string"
        if isinstance(tp, type) and issubclass(tp, Enum):
            name = f"{NAMESPACE}.{tp.__name__}"
            if name in self.defined:
                return name
            self.defined.add(name)
            return {"type": "enum", "name": name, "symbols": [m.value for m in tp]}
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return self.model(tp)
        if tp is Decimal:
            digits = _constraint(meta, "max_digits")
            scale = _constraint(meta, "decimal_places")
            if digits is None or scale is None:
                raise TypeError("a Decimal in a contract needs max_digits and decimal_places")
            return {"type": "bytes", "logicalType": "decimal", "precision": digits, "scale": scale}
        if tp is AwareDatetime or tp is datetime:
            return {"type": "long", "logicalType": "timestamp-micros"}
        if tp is UUID:
            return {"type": "string", "logicalType": "uuid"}
        if tp is str:
            return "string"
        if tp is int:
            return "int"
        if tp is bool:
            return "boolean"
        raise TypeError(f"no Avro mapping for {tp!r}")


def _constraint(meta: list[Any], attr: str) -> Any:
    for item in meta:
        if isinstance(item, FieldInfo):
            found = _constraint(list(item.metadata), attr)
            if found is not None:
                return found
        elif getattr(item, attr, None) is not None:
            return getattr(item, attr)
    return None


def derive_avro_schema(model: type[Event]) -> dict[str, Any]:
    """The Avro schema that encodes ``model`` one to one."""
    schema: dict[str, Any] = _Deriver().model(model)
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


# --- the committed schemas --------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaVersion:
    """One published version of one event type's schema."""

    event_type: str
    version: int
    raw: dict[str, Any]  # as written, with docs and confidentiality tags
    parsed: Any  # fastavro's parsed form, cached for encoding and decoding
    canonical: str  # Avro parsing canonical form
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, little-endian (single-object)

    @property
    def confidential_fields(self) -> dict[str, str]:
        """Dotted path of every field tagged confidential -> the kind of confidential data."""
        return dict(_walk_confidential(self.raw, ""))


def _walk_confidential(schema: Any, prefix: str) -> typing.Iterator[tuple[str, str]]:
    if isinstance(schema, list):
        for member in schema:
            yield from _walk_confidential(member, prefix)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            for f in schema["fields"]:
                path = f"{prefix}{f['name']}"
                if "confidential" in f:
                    yield path, f["confidential"]
                yield from _walk_confidential(f["type"], path + ".")
        elif schema.get("type") == "array":
            yield from _walk_confidential(schema["items"], prefix[:-1] + "[].")
        elif schema.get("type") == "map":
            yield from _walk_confidential(schema["values"], prefix[:-1] + "{}.")


def _load(event_type: str, version: int, path: Path) -> SchemaVersion:
    return schema_version(event_type, version, json.loads(path.read_text(encoding="utf-8")))


def schema_version(event_type: str, version: int, raw: dict[str, Any]) -> SchemaVersion:
    """A schema of ``event_type`` ready for encoding and decoding (parsed, fingerprinted)."""
    # parse_schema's default marks the result as parsed; without that mark fastavro parses the
    # schema again on every read and write (measured: 2x the cost of a whole decode).
    parsed = fastavro.parse_schema(raw)
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    # fastavro gives the CRC-64-AVRO fingerprint big-endian as hex; single-object encoding
    # writes it little-endian.
    return SchemaVersion(event_type, version, raw, parsed, canonical, fingerprint[::-1])


def schema_path(event_type: str) -> Path:
    return AVRO_DIR / f"{event_type}.avsc"


def history_path(event_type: str, version: int) -> Path:
    return HISTORY_DIR / event_type / f"v{version}.avsc"


@cache
def current(event_type: str) -> SchemaVersion:
    """The current schema of ``event_type``; its version is the model's schema_version."""
    if event_type not in EVENT_MODELS:
        raise KeyError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_MODELS)}")
    version = EVENT_MODELS[event_type].model_fields["schema_version"].default
    return _load(event_type, version, schema_path(event_type))


@cache
def history(event_type: str) -> tuple[SchemaVersion, ...]:
    """Every published version of ``event_type``, oldest first."""
    folder = HISTORY_DIR / event_type
    versions = sorted(int(p.stem[1:]) for p in folder.glob("v*.avsc"))
    return tuple(_load(event_type, v, history_path(event_type, v)) for v in versions)


@cache
def by_fingerprint() -> dict[bytes, SchemaVersion]:
    """Every known schema version (all types, all history) by its single-object fingerprint."""
    return {s.fingerprint: s for t in EVENT_MODELS for s in (*history(t), current(t))}


def committed_problem(path: Path, expected: str, source: str) -> str | None:
    """Why the committed schema file ``path`` is not ``expected`` (derived from ``source``),
    or None when it is: the one comparison for the private and the shared schema files."""
    if not path.exists():
        return f"{path}: missing (run 'batteryloop schemas write')"
    if path.read_text(encoding="utf-8") != expected:
        return f"{path}: differs from {source}"
    return None


def write_if_changed(path: Path, text: str) -> bool:
    """Write a derived schema file unless it already holds ``text``; True if written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def check_committed() -> list[str]:
    """Differences between the models and the committed ``.avsc`` files; empty when in sync."""
    problems = []
    for event_type, model in EVENT_MODELS.items():
        expected = render(derive_avro_schema(model))
        version = model.model_fields["schema_version"].default
        for path in (schema_path(event_type), history_path(event_type, version)):
            problem = committed_problem(path, expected, f"the {model.__name__} model")
            if problem:
                problems.append(problem)
    return problems


def write_committed() -> list[Path]:
    """Write each model's schema as current and as its version in the history.

    A history file that exists already and differs is never overwritten: a published version
    is immutable, so the model's schema_version must be raised instead.
    """
    written = []
    for event_type, model in EVENT_MODELS.items():
        text = render(derive_avro_schema(model))
        version = model.model_fields["schema_version"].default
        hist = history_path(event_type, version)
        if hist.exists() and hist.read_text(encoding="utf-8") != text:
            raise ValueError(
                f"{hist} is published and differs from {model.__name__}: raise its "
                f"schema_version to {version + 1} instead of rewriting history"
            )
        written += [p for p in (schema_path(event_type), hist) if write_if_changed(p, text)]
    return written
