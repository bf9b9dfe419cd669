"""What the generated Avro readers (:mod:`.plain`) and writers (:mod:`.writer`) share: a source
emitter with fresh variable names and the constants the generated code refers to."""

from __future__ import annotations

from typing import Any


class SourceGenerator:
    """Collects the lines of one generated function, indented by level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {}  # named types defined so far
        self.constants: dict[str, Any] = {}
        self.counter = 0

    def var(self, prefix: str) -> str:
        """A fresh variable name."""
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        """A name the generated code reads ``value`` by."""
        name = self.var("K")
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)
