"""File sources: JSON Lines of events (one pydantic-JSON event per line), and CSV (columns named
by field path; see :data:`CSV_RULES` and :func:`csv_header`).

Files are read as bytes, one line at a time (:func:`byte_lines`): a line that is not UTF-8, not
JSON, too long or not a valid event is rejected with its line number and the reason, and every
other line still comes through. Nothing is read whole into memory.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pydantic import ValidationError

from schemas.events import ANY_EVENT, EVENT_MODELS, Event
from schemas.serde import describe_validation_error

#: A line longer than this is rejected without being held whole in memory. Far above any event
#: (Kafka's default record limit is 1 MiB); binary garbage without line breaks is what hits it.
MAX_LINE_BYTES = 4 << 20
#: How much of an unreadable or over-long line a rejection quotes.
_QUOTED_BYTES = 200
_BOM = b"\xef\xbb\xbf"  # spreadsheet exports start UTF-8 files with it


@dataclass(frozen=True)
class RejectedLine:
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"

    def to_json(self) -> str:
        return json.dumps({"line": self.line, "reason": self.reason, "text": self.text})


class UnreadableSource(ValueError):
    """The input file cannot be opened: missing, a directory, not permitted."""


class _ReadsLines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


#: A line of a source: raw bytes from a file, text from a caller, or already rejected.
SourceLine = bytes | str | RejectedLine


def open_source(path: str | Path) -> BinaryIO:
    """``path`` opened for reading bytes, or :class:`UnreadableSource` saying why not."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise UnreadableSource(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnreadableSource(f"{path}: is a directory, not a file of events") from None
    except OSError as exc:
        raise UnreadableSource(f"{path}: cannot be read: {exc.strerror}") from None


def byte_lines(stream: _ReadsLines, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | RejectedLine]:
    """The lines of ``stream`` as bytes; a line over ``limit`` bytes is skipped and rejected."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size, quoted = len(line), line[:_QUOTED_BYTES]
        while not line.endswith(b"\n") and (line := stream.readline(limit)):
            size += len(line)
        reason = f"line of {size} bytes, longer than {limit}: not a line of events"
        yield RejectedLine(number, reason, _show(quoted))


def _show(raw: bytes) -> str:
    """Bytes as text for a rejection report, undecodable bytes escaped."""
    return raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")


def _text(number: int, line: SourceLine) -> str | RejectedLine:
    """A source line as text, or its rejection when it is not UTF-8."""
    if not isinstance(line, bytes):
        return line
    if number == 1 and line.startswith(_BOM):
        line = line[len(_BOM) :]
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RejectedLine(
            number,
            f"not UTF-8: byte 0x{line[exc.start]:02x} at byte {exc.start + 1} of the line",
            _show(line[: max(_QUOTED_BYTES, exc.start + 16)]),
        )


def read_jsonl(lines: Iterable[SourceLine]) -> Iterator[tuple[int, Event | RejectedLine]]:
    """Each non-blank line as ``(line number, event or rejection)``; blank lines are skipped."""
    for number, raw in enumerate(lines, start=1):
        decoded = _text(number, raw)
        if isinstance(decoded, RejectedLine):
            yield number, decoded
            continue
        text = decoded.strip()
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
            child: dict[str, Any] | list[Any] = {} if not following.isdigit() else []
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
    nested: dict[str, Any] = _compact(root)
    return nested


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


class _CsvText:
    """Source lines as text for the csv module, remembering the lines that could not be read.

    An undecodable line goes on with replacement characters so that quoting (a cell spanning
    lines) keeps its structure; the row holding it is rejected all the same.
    """

    def __init__(self, lines: Iterable[SourceLine]) -> None:
        self.lines = lines
        self.problems: dict[int, RejectedLine] = {}

    def __iter__(self) -> Iterator[str]:
        for number, line in enumerate(self.lines, start=1):
            text = _text(number, line)
            if isinstance(text, RejectedLine):
                self.problems[number] = text
                raw = line if isinstance(line, bytes) else b"\n"
                text = raw.decode("utf-8", "replace")
            yield text

    def problems_up_to(self, last: int) -> list[RejectedLine]:
        """The unreadable lines up to ``last``, each reported once."""
        found = sorted(n for n in self.problems if n <= last)
        return [self.problems.pop(n) for n in found]


def read_csv(
    lines: Iterable[SourceLine], event_type: str | None = None
) -> Iterator[tuple[int, Event | RejectedLine]]:
    """Each data row as ``(line number, event or rejection)``, the header naming field paths."""
    import csv

    source = _CsvText(lines)
    reader = csv.DictReader(source)
    try:
        fieldnames = reader.fieldnames  # reads the header; an empty file has no rows
    except csv.Error as exc:
        yield 1, RejectedLine(1, f"header is not CSV: {exc}", "")
        return
    for problem in source.problems_up_to(reader.line_num):
        yield problem.line, RejectedLine(problem.line, f"header: {problem.reason}", problem.text)
    if fieldnames is None:
        return
    ended = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            number, ended = ended + 1, reader.line_num
            yield number, RejectedLine(number, f"not CSV: {exc}", "")
            continue
        number, ended = ended + 1, reader.line_num  # a quoted cell may span lines
        in_row = []
        for problem in source.problems_up_to(ended):
            if problem.line < number:  # an over-long line, read as a blank one and skipped
                yield problem.line, problem
            else:
                in_row.append(problem)
        if in_row:
            first = in_row[0]
            where = "" if first.line == number else f"line {first.line} of the row: "
            yield number, RejectedLine(number, where + first.reason, first.text)
        else:
            yield number, _row_event(number, row, event_type)
    for problem in source.problems_up_to(sys.maxsize):  # after the last row
        yield problem.line, problem


def _row_event(number: int, row: dict[str, Any], event_type: str | None) -> Event | RejectedLine:
    text = ",".join(cell or "" for cell in row.values() if isinstance(cell, str))
    if None in row:
        return RejectedLine(number, "more cells than the header has columns", text)
    try:
        data = _nest(row)
        if event_type is not None:
            data.setdefault("event_type", event_type)
        model = EVENT_MODELS.get(data.get("event_type"))  # type: ignore[arg-type]
        if model is not None:
            _empties(model, data)
        return ANY_EVENT.validate_python(data)
    except (ValidationError, ValueError, TypeError, IndexError) as exc:
        reason = (
            describe_validation_error(exc)
            if isinstance(exc, ValidationError)
            else f"columns do not fit together: {exc}"
        )
        return RejectedLine(number, reason, text)
