"""File sources: JSON Lines of events (one pydantic-JSON event per line), and CSV (columns named
by field path; see :data:`CSV_RULES` and :func:`csv_header`)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas.events import ANY_EVENT, EVENT_MODELS, Event
from schemas.serde import describe_validation_error


@dataclass(frozen=True)
class RejectedLine:
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"

    def to_json(self) -> str:
        return json.dumps({"line": self.line, "reason": self.reason, "text": self.text})


def read_jsonl(lines: Iterable[str]) -> Iterator[tuple[int, Event | RejectedLine]]:
    """Each non-blank line as ``(line number, event or rejection)``; blank lines are skipped."""
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            yield number, ANY_EVENT.validate_json(text)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == "json_invalid":
                reason = f"not JSON: {exc.errors()[0]['msg']}"
            else:
                reason = describe_validation_error(exc)
            yield number, RejectedLine(number, reason, text)


# --- CSV ----------------------------------------------------------------------------------------

CSV_RULES = """\
One event type per file (or an event_type column). The header names each column by its
field path: top-level fields by name (lot_id, mass_kg); fields of a record with a dot
(carbon_footprint.kg_co2e_per_kwh, offtake_price.amount); a composition per metal
(composition.nickel); list items by position from 0 (inputs.0.lot_id, inputs.0.mass_kg,
inputs.1.lot_id, components.0). An empty cell is a field not given. Times are ISO 8601 with a
zone; masses are kg, shares fractions (0.25), as in the JSON form of the events."""


def csv_header(event_type: str, items: int = 1) -> list[str]:
    """The columns of ``event_type`` in CSV, with ``items`` entries for every list."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    from schemas.values import Metal

    def walk(model: type[BaseModel], prefix: str) -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            out += columns(info.annotation, f"{prefix}{name}")
        return out

    def columns(tp: object, path: str) -> list[str]:
        args = [a for a in get_args(tp) if a is not type(None)]
        origin = get_origin(tp)
        if origin is list:
            return [c for i in range(items) for c in columns(args[0], f"{path}.{i}")]
        if origin is dict:
            return [f"{path}.{m.value}" for m in Metal]
        if origin in (typing.Union, types.UnionType):  # X | None
            return columns(args[0], path)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return walk(tp, path + ".")
        return [path]

    return walk(EVENT_MODELS[event_type], "")


def _nest(row: dict[str, str]) -> dict[str, Any]:
    """Columns named by field path to the nested event structure (empty cells left out)."""
    root: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":  # a blank (" ") is a value
            continue
        steps = column.strip().split(".")
        node: Any = root
        for step, following in zip(steps, steps[1:], strict=False):
            key: Any = int(step) if step.isdigit() else step
            child = {} if not following.isdigit() else []
            if isinstance(node, list):
                while len(node) <= key:
                    node.append(None)
                if node[key] is None:
                    node[key] = child
                node = node[key]
            else:
                node = node.setdefault(key, child)
        last: Any = int(steps[-1]) if steps[-1].isdigit() else steps[-1]
        if isinstance(node, list):
            while len(node) <= last:
                node.append(None)
        node[last] = cell
    return _compact(root)


def _empties(model: Any, data: dict[str, Any]) -> None:
    """A list or a composition with no cell filled is an empty one (CSV cannot say otherwise)."""
    for name, info in model.model_fields.items():
        tp = info.annotation
        origin = typing.get_origin(tp)
        if name not in data:
            if origin is list:
                data[name] = []
            elif origin is dict:
                data[name] = {}
            continue
        args = typing.get_args(tp)
        inner = args[0] if origin is list else tp
        if isinstance(inner, type) and hasattr(inner, "model_fields"):
            for item in data[name] if origin is list else [data[name]]:
                if isinstance(item, dict):
                    _empties(inner, item)


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v) for v in value if v is not None]
    return value


def read_csv(
    lines: Iterable[str], event_type: str | None = None
) -> Iterator[tuple[int, Event | RejectedLine]]:
    """Each data row as ``(line number, event or rejection)``, the header naming field paths."""
    import csv

    reader = csv.DictReader(lines)
    if reader.fieldnames is None:  # reads the header; an empty file has no rows
        return
    ended = reader.line_num
    for row in reader:
        number, ended = ended + 1, reader.line_num  # a quoted cell may span lines
        text = ",".join(cell or "" for cell in row.values() if isinstance(cell, str))
        if None in row:
            yield number, RejectedLine(number, "more cells than the header has columns", text)
            continue
        try:
            data = _nest(row)
            if event_type is not None:
                data.setdefault("event_type", event_type)
            model = EVENT_MODELS.get(data.get("event_type"))  # type: ignore[arg-type]
            if model is not None:
                _empties(model, data)
            yield number, ANY_EVENT.validate_python(data)
        except (ValidationError, ValueError, TypeError, IndexError) as exc:
            reason = (
                describe_validation_error(exc)
                if isinstance(exc, ValidationError)
                else f"columns do not fit together: {exc}"
            )
            yield number, RejectedLine(number, reason, text)
