"""File sources: JSON Lines of events, one pydantic-JSON event per line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from batteryloop.schemas.events import ANY_EVENT, Event
from batteryloop.schemas.serde import describe_validation_error


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
