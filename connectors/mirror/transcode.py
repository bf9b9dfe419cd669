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

import struct
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from fastavro import _logical_writers_py

from connectors.mirror.policy import SITE_COUNTRY, RedactionTally, SharingPolicy, mass_band
from schemas import catalog, plain
from schemas.events import EVENT_MODELS

#: fastavro's own conversion of a decimal to its bytes: the same bytes, and the same errors
#: (more digits than the schema's precision), as encoding the record with fastavro.
decimal_bytes: Callable[[Any, dict[str, Any]], bytes] = _logical_writers_py.prepare_bytes_decimal  # type: ignore[attr-defined]
Skip = Callable[[bytes, int], int]
#: Writes one field of a record: (private body, position, the redacted record's value of the
#: field, output chunks) -> position after the field in the private body.
Part = Callable[[bytes, int, Any, list[bytes]], int]
#: Reads a private body from a position into its plain record, writing the shared body's
#: chunks and counting what it redacts on the way: (value, start, output chunks, tally).
Transcode = Callable[[bytes, int, list[bytes], RedactionTally], dict[str, Any]]


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
        self.policy = policy
        self.event_type = event_type
        self.rules = policy.events[event_type]
        raw = catalog.current(event_type).raw
        self._named: dict[str, Any] = {}
        self._register(raw)
        self._fields = self._record(raw, "")
        self._transcode = generated_transcoder(policy, event_type)

    def body(self, private: bytes, start: int, shared: dict[str, Any]) -> bytes:
        """The shared body for the private body at ``private[start:]``; ``shared``: the record
        as the policy redacted it (where the transformed values come from)."""
        out: list[bytes] = []
        self._fields(private, start, shared, out)
        return b"".join(out)

    def read_and_transcode(
        self, private: bytes, start: int
    ) -> tuple[dict[str, Any], bytes, RedactionTally]:
        """The plain record (what :mod:`schemas.plain`'s reader gives), the shared body and
        the tally, in one pass over the private body at ``private[start:]``; raises
        :class:`~schemas.plain.PlainDecodeError` when the body does not match the schema."""
        out: list[bytes] = []
        tally = RedactionTally()
        record = self._transcode(private, start, out, tally)
        return record, b"".join(out), tally

    # --- building the walk, once per event type -------------------------------------------

    def _register(self, schema: Any) -> None:
        self._register_into(schema, self._named)

    @staticmethod
    def _register_into(schema: Any, named: dict[str, Any]) -> None:
        if isinstance(schema, list):
            for t in schema:
                SharedWriter._register_into(t, named)
        elif isinstance(schema, dict):
            if schema.get("type") in ("record", "enum", "fixed"):
                name = schema["name"]
                for alias in (name, name.rsplit(".", 1)[-1], f"{schema.get('namespace')}.{name}"):
                    named.setdefault(alias, schema)
            for f in schema.get("fields", []):
                SharedWriter._register_into(f["type"], named)
            for key in ("items", "values"):
                if key in schema:
                    SharedWriter._register_into(schema[key], named)

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
        return value_writer(avro_type, path, self._resolve)

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


def value_writer(
    avro_type: Any, path: str, resolve: Callable[[Any], Any]
) -> Callable[[Any], bytes]:
    """The encoder of a transformed value: a string or a decimal, optional or not."""
    union = avro_type if isinstance(avro_type, list) else None
    kind = resolve(_non_null(avro_type))
    if isinstance(kind, dict) and kind.get("logicalType") == "decimal":

        def encoded(value: Any) -> bytes:
            data = decimal_bytes(value, kind)
            return write_long(len(data)) + data

    elif kind == "string" or _is(kind, "string"):

        def encoded(value: Any) -> bytes:
            data = str(value).encode()
            return write_long(len(data)) + data

    else:  # load() admits transformations of strings and decimals only
        raise AssertionError(f"{path}: cannot write a transformed {kind!r}")
    if union is None:
        return encoded
    null, other = write_long(union.index("null")), write_long(union.index(_non_null(union)))
    return lambda value: null if value is None else other + encoded(value)


def _non_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        return next(t for t in avro_type if t != "null")
    return avro_type


def _is(schema: Any, kind: str) -> bool:
    return isinstance(schema, dict) and schema.get("type") == kind


def writers(policy: SharingPolicy) -> dict[str, SharedWriter]:
    """A writer for every event type ``policy`` shares."""
    return {t: SharedWriter(policy, t) for t in policy.events}


def shared_key(policy: SharingPolicy, event_type: str) -> Callable[[dict[str, Any]], Any]:
    """The record key's value after redaction (what ``redact(record)[KEY_FIELD]`` is), taken
    from the private plain record; None when the policy drops the key field."""
    name = EVENT_MODELS[event_type].KEY_FIELD
    step = policy.events[event_type].step("", name)
    if step.action == "keep":
        return lambda record: record[name]
    if step.action == "drop":
        return lambda record: None
    if step.action == "country":
        sibling = SITE_COUNTRY[event_type][name]
        return lambda record: record[sibling]
    field = next(f for f in catalog.current(event_type).raw["fields"] if f["name"] == name)
    transform = plain_transform(policy, step.action, _non_null(field["type"]))
    return lambda record: transform(record[name])


def plain_transform(policy: SharingPolicy, action: str, kind: Any) -> Callable[[Any], Any]:
    """The policy's transformation of a plain value (a decimal is its unscaled integer, as
    the plain reader gives it; ``kind`` its Avro type)."""
    transform = policy._transform
    if action == "band":
        scale = kind.get("scale", 0)
        return lambda v: None if v is None else mass_band(Decimal(v).scaleb(-scale))
    return lambda v: transform(action, v)


# --- the transcoder, generated per event type and policy ------------------------------------


class _TranscoderSource(plain._Generator):
    """Emits the source of one transcoder: the plain reader's code for the private schema, with
    the policy's decisions inlined field by field. ``run`` marks the start of the private bytes
    not yet copied: a kept field only moves the read position past itself (the run grows), a
    dropped one ends the run before it and starts the next after it, a transformed one also
    appends its new value's bytes, an array of records with rules inside is rewritten as one
    block (its count written anew)."""

    def __init__(self, policy: SharingPolicy, event_type: str) -> None:
        super().__init__()
        self.policy = policy
        self.event_type = event_type
        self.rules = policy.events[event_type]
        self.deferred: list[tuple[str, str, str]] = []  # (slot, writer, sibling field) of sites

    def flush(self, indent: int) -> None:
        self.emit(indent, "if run < p: out.append(b[run:p])")

    def walked(self, schema: dict[str, Any], prefix: str, indent: int, target: str) -> None:
        """Read a record whose fields the policy decides one by one into ``target``."""
        self.names.setdefault(schema["name"], schema)
        values = []
        for f in schema["fields"]:
            name, path = f["name"], prefix + f["name"]
            step = self.rules.step(prefix, name)
            value = self.var("v")
            values.append(f"{name!r}: {value}")
            kind = self._resolve(_non_null(f["type"]))
            if step.record is not None and _is(kind, "record"):
                self.optional(f["type"], indent, value, partial(self.walked, kind, step.record))
            elif (
                step.items is not None
                and _is(kind, "array")
                and _is(self._resolve(kind["items"]), "record")
            ):
                items = self._resolve(kind["items"])
                self.optional(f["type"], indent, value, partial(self.array, items, step.items))
            elif step.action == "keep":
                self.node(f["type"], indent, value)
            else:
                self.changed(f, step, path, indent, value)
        self.emit(indent, f"{target} = {{{', '.join(values)}}}")
        if prefix == "":
            for slot, write, sibling in self.deferred:  # sites reduced to their country
                self.emit(indent, f"out[{slot}] = {write}({target}[{sibling!r}])")

    def changed(self, f: dict[str, Any], step: Any, path: str, indent: int, value: str) -> None:
        """A field dropped or transformed: the run ends before it, the next starts after it."""
        self.flush(indent)
        self.node(f["type"], indent, value)
        self.emit(indent, "run = p")
        tally = [f"t.paths.append({path!r})"]
        if step.action == "drop":
            if step.confidential:
                tally.append("t.confidential_removed += 1")
            else:
                tally.append("t.dropped += 1")
                if step.holds_confidential:
                    within = self.const(self.rules.confidential_in)
                    tally.append(f"t.confidential_removed += {within}({value}, {path!r})")
        elif step.action == "country":
            slot = self.var("s")
            sibling = SITE_COUNTRY[self.event_type][path]
            self.emit(indent, f"{slot} = len(out); out.append(b'')")
            self.deferred.append((slot, self.const(self.value_writer(f["type"], path)), sibling))
            tally.append("t.reduced_to_country += 1")
        else:
            write = self.const(self.value_writer(f["type"], path))
            kind = self._resolve(_non_null(f["type"]))
            transform = self.const(plain_transform(self.policy, step.action, kind))
            self.emit(indent, f"out.append({write}({transform}({value})))")
            tally.append(
                "t.pseudonymised += 1" if step.action == "pseudonymise" else "t.banded += 1"
            )
        self.emit(indent, f"if {value} is not None:")
        for line in tally:
            self.emit(indent + 1, line)

    def optional(
        self, avro_type: Any, indent: int, target: str, read: Callable[[int, str], None]
    ) -> None:
        """``read`` behind the union index of an optional field (the same index in both)."""
        if not isinstance(avro_type, list):
            read(indent, target)
            return
        i = self.var("i")
        self.long(indent, i)
        for index, member in enumerate(avro_type):
            self.emit(indent, f"{'if' if index == 0 else 'elif'} {i} == {index}:")
            if member == "null":
                self.emit(indent + 1, f"{target} = None")
            else:
                read(indent + 1, target)
        self.emit(indent, "else:")
        self.emit(indent + 1, f"raise IndexError(f'union index {{{i}}} out of range')")

    def array(self, items: dict[str, Any], prefix: str, indent: int, target: str) -> None:
        """An array of records with rules inside, written as one block."""
        count, item, slot = self.var("n"), self.var("v"), self.var("s")
        self.flush(indent)
        self.emit(indent, f"{target} = []")
        self.emit(indent, f"{slot} = len(out); out.append(b'')")
        self.emit(indent, "while True:")
        self.long(indent + 1, count)
        self.emit(indent + 1, f"if {count} == 0: break")
        self.emit(indent + 1, f"if {count} < 0:")
        self.emit(indent + 2, f"{count} = -{count}")
        self.long(indent + 2, "_")
        self.emit(indent + 1, "run = p")
        self.emit(indent + 1, f"for _ in range({count}):")
        self.walked(items, prefix, indent + 2, item)
        self.emit(indent + 2, f"{target}.append({item})")
        self.flush(indent + 1)
        self.emit(indent, "run = p")
        self.emit(indent, f"if {target}: out[{slot}] = _write_long(len({target}))")
        self.emit(indent, "out.append(b'\\x00')")

    def _resolve(self, schema: Any) -> Any:
        return self.names.get(schema, schema) if isinstance(schema, str) else schema

    def value_writer(self, avro_type: Any, path: str) -> Callable[[Any], bytes]:
        return value_writer(avro_type, path, self._resolve)


def generated_transcoder(policy: SharingPolicy, event_type: str) -> Transcode:
    """The transcoder of ``event_type``'s current private schema under ``policy``: compiled
    from generated source, like the plain readers (:mod:`schemas.plain`)."""
    raw = catalog.current(event_type).raw
    gen = _TranscoderSource(policy, event_type)
    named: dict[str, Any] = {}
    SharedWriter._register_into(raw, named)
    gen.names.update(named)
    gen.walked(raw, "", 2, "r")
    source = "\n".join(
        [
            "def transcode(b, p, out, t):",
            "    run = p",
            *plain.guarded(gen.lines),
            "    if run < p: out.append(b[run:p])",
            "    return r",
        ]
    )
    namespace: dict[str, Any] = {
        "_long_rest": plain._long_rest,
        "_int_from": int.from_bytes,
        "_unpack_from": struct.unpack_from,
        "_write_long": write_long,
        "uuid_text": plain.uuid_text,
        "_canonical": plain._CANONICAL_UUID.fullmatch,
        "PlainDecodeError": plain.PlainDecodeError,
        **gen.constants,
    }
    name = f"<transcoder of {event_type} under {policy.name or policy.direction}>"
    exec(compile(source, name, "exec"), namespace)
    transcode: Transcode = namespace["transcode"]
    return transcode
