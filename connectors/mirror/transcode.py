"""The shared form of a record, written from the private record's bytes: no Avro encoder.

The shared schema is the private one without the fields the policy drops, with the same field
types (:func:`connectors.mirror.policy.shared_schema`). So the Avro binary of every field the
policy keeps is the same in both, byte for byte: a :class:`SharedWriter` walks the private
body, copies the runs of kept fields as they are, leaves out dropped ones, and writes only the
values the policy transforms (pseudonyms, banded masses, sites reduced to their country),
taking them from the redacted record. It replaces encoding the whole redacted record under the
shared schema, which converted every decimal and timestamp back from Python objects.

The result is what ``fastavro`` writes for the redacted record whenever the private body is in
the canonical form every Avro writer produces (one block per array and map, as ``fastavro``
and the Java library write them): arrays that are rewritten are written as one block.
Pure: no Kafka here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastavro import _logical_writers_py

from connectors.mirror.policy import SharingPolicy
from schemas import catalog

#: fastavro's own conversion of a decimal to its bytes: the same bytes, and the same errors
#: (more digits than the schema's precision), as encoding the record with fastavro.
decimal_bytes: Callable[[Any, dict[str, Any]], bytes] = _logical_writers_py.prepare_bytes_decimal  # type: ignore[attr-defined]
Skip = Callable[[bytes, int], int]
#: Writes one field of a record: (private body, position, the redacted record's value of the
#: field, output chunks) -> position after the field in the private body.
Part = Callable[[bytes, int, Any, list[bytes]], int]


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at ``pos``: (value, position after it)."""
    byte = buf[pos]
    pos += 1
    n = byte & 0x7F
    shift = 7
    while byte & 0x80:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


def write_long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class SharedWriter:
    """Writes the shared body of one event type under one policy from the private body."""

    def __init__(self, policy: SharingPolicy, event_type: str) -> None:
        self.rules = policy.events[event_type]
        raw = catalog.current(event_type).raw
        self._named: dict[str, Any] = {}
        self._register(raw)
        self._fields = self._record(raw, "")

    def body(self, private: bytes, start: int, shared: dict[str, Any]) -> bytes:
        """The shared body for the private body at ``private[start:]``; ``shared``: the record
        as the policy redacted it (where the transformed values come from)."""
        out: list[bytes] = []
        self._fields(private, start, shared, out)
        return b"".join(out)

    # --- building the walk, once per event type -------------------------------------------

    def _register(self, schema: Any) -> None:
        if isinstance(schema, list):
            for t in schema:
                self._register(t)
        elif isinstance(schema, dict):
            if schema.get("type") in ("record", "enum", "fixed"):
                name = schema["name"]
                for alias in (name, name.rsplit(".", 1)[-1], f"{schema.get('namespace')}.{name}"):
                    self._named.setdefault(alias, schema)
            for f in schema.get("fields", []):
                self._register(f["type"])
            for key in ("items", "values"):
                if key in schema:
                    self._register(schema[key])

    def _resolve(self, schema: Any) -> Any:
        return self._named.get(schema, schema) if isinstance(schema, str) else schema

    def _record(self, schema: dict[str, Any], prefix: str) -> Part:
        """The walk of a record whose fields the policy decides one by one."""
        rules = self.rules
        plan: list[tuple[str, str, Any]] = []  # (field name, what to do, skip or part)
        for f in schema["fields"]:
            name, path = f["name"], prefix + f["name"]
            step = rules.step(prefix, name)
            kind = self._resolve(_non_null(f["type"]))
            if step.record is not None and _is(kind, "record"):
                inner = self._record(kind, step.record)
                plan.append((name, "part", self._nullable(f["type"], inner)))
            elif (
                step.items is not None
                and _is(kind, "array")
                and _is(self._resolve(kind["items"]), "record")
            ):
                items = self._record(self._resolve(kind["items"]), step.items)
                plan.append((name, "part", self._nullable(f["type"], self._array(items))))
            elif step.action == "keep":
                plan.append((name, "keep", self._skip(f["type"])))
            elif step.action == "drop":
                plan.append((name, "drop", self._skip(f["type"])))
            else:  # pseudonymise, band, country: a new value of the field's own type
                plan.append((name, "value", (self._skip(f["type"]), self._value(f["type"], path))))
        return _walk(plan)

    def _nullable(self, avro_type: Any, part: Part) -> Part:
        """``part`` behind the union index of an optional field (the same index in both)."""
        if not isinstance(avro_type, list):
            return part
        null = avro_type.index("null")

        def optional(buf: bytes, pos: int, value: Any, out: list[bytes]) -> int:
            start = pos
            index, pos = read_long(buf, pos)
            out.append(buf[start:pos])
            return pos if index == null else part(buf, pos, value, out)

        return optional

    def _array(self, item: Part) -> Part:
        def array(buf: bytes, pos: int, value: Any, out: list[bytes]) -> int:
            count, pos = read_long(buf, pos)
            i = 0
            body: list[bytes] = []
            while count:
                if count < 0:  # a block with its size in bytes after the count
                    count = -count
                    _, pos = read_long(buf, pos)
                for _ in range(count):
                    pos = item(buf, pos, value[i], body)
                    i += 1
                count, pos = read_long(buf, pos)
            if i:
                out.append(write_long(i))
                out.extend(body)
            out.append(b"\x00")
            return pos

        return array

    def _value(self, avro_type: Any, path: str) -> Callable[[Any], bytes]:
        """The encoder of a transformed value: a string or a decimal, optional or not."""
        union = avro_type if isinstance(avro_type, list) else None
        kind = self._resolve(_non_null(avro_type))
        if isinstance(kind, dict) and kind.get("logicalType") == "decimal":

            def plain(value: Any) -> bytes:
                data = decimal_bytes(value, kind)
                return write_long(len(data)) + data

        elif kind == "string" or _is(kind, "string"):

            def plain(value: Any) -> bytes:
                data = str(value).encode()
                return write_long(len(data)) + data

        else:  # load() admits transformations of strings and decimals only
            raise AssertionError(f"{path}: cannot write a transformed {kind!r}")
        if union is None:
            return plain
        null, other = write_long(union.index("null")), write_long(union.index(_non_null(union)))
        return lambda value: null if value is None else other + plain(value)

    def _skip(self, avro_type: Any) -> Skip:
        """How to step over a value of ``avro_type`` in the binary."""
        t = self._resolve(avro_type)
        if isinstance(t, list):
            branches = [self._skip(b) for b in t]

            def union(buf: bytes, pos: int) -> int:
                index, pos = read_long(buf, pos)
                return branches[index](buf, pos)

            return union
        kind = t.get("type") if isinstance(t, dict) else t
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in self._named):
            return self._skip(kind)
        if kind == "null":
            return lambda buf, pos: pos
        if kind == "boolean":
            return lambda buf, pos: pos + 1
        if kind in ("int", "long", "enum"):
            return lambda buf, pos: read_long(buf, pos)[1]
        if kind == "float":
            return lambda buf, pos: pos + 4
        if kind == "double":
            return lambda buf, pos: pos + 8
        if kind in ("bytes", "string"):

            def sized(buf: bytes, pos: int) -> int:
                n, pos = read_long(buf, pos)
                return pos + n

            return sized
        if kind == "fixed":
            size = t["size"]
            return lambda buf, pos: pos + size
        if kind == "record":
            fields = [self._skip(f["type"]) for f in t["fields"]]

            def record(buf: bytes, pos: int) -> int:
                for skip in fields:
                    pos = skip(buf, pos)
                return pos

            return record
        if kind in ("array", "map"):
            item = self._skip(t["items"]) if kind == "array" else self._skip(t["values"])
            key = kind == "map"

            def blocks(buf: bytes, pos: int) -> int:
                count, pos = read_long(buf, pos)
                while count:
                    if count < 0:
                        size, pos = read_long(buf, pos)
                        pos += size
                    else:
                        for _ in range(count):
                            if key:
                                n, pos = read_long(buf, pos)
                                pos += n
                            pos = item(buf, pos)
                    count, pos = read_long(buf, pos)
                return pos

            return blocks
        raise AssertionError(f"no Avro type {kind!r}")


def _walk(plan: list[tuple[str, str, Any]]) -> Part:
    """The fields of one record: runs of kept fields copied at once."""

    def record(buf: bytes, pos: int, shared: Any, out: list[bytes]) -> int:
        run = pos
        for name, what, how in plan:
            if what == "keep":
                pos = how(buf, pos)
                continue
            if run < pos:
                out.append(buf[run:pos])
            if what == "drop":
                pos = how(buf, pos)
            elif what == "value":
                skip, write = how
                pos = skip(buf, pos)
                out.append(write(shared.get(name)))
            else:
                pos = how(buf, pos, shared.get(name), out)
            run = pos
        if run < pos:
            out.append(buf[run:pos])
        return pos

    return record


def _non_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null")
    return avro_type


def _is(schema: Any, kind: str) -> bool:
    return isinstance(schema, dict) and schema.get("type") == kind


def writers(policy: SharingPolicy) -> dict[str, SharedWriter]:
    """A writer for every event type ``policy`` shares."""
    return {t: SharedWriter(policy, t) for t in policy.events}
