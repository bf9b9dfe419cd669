"""Avro bodies written straight from the pydantic events, by a writer generated per schema.

The mirror image of :mod:`schemas.plain`: the schemas are few and fixed, so each gets a writer
compiled from Python source generated from it, straight-line code per field that reads the
model's fields from its instance dict (no ``model_dump``, no dispatch on the schema at run
time) and appends the binary form to one ``bytearray``. Logical types are converted once,
where the value is met: a ``Decimal`` to its unscaled integer, an aware ``datetime`` to
microseconds since the epoch, a ``UUID`` to its canonical string, an enum member to its index.

The bytes are fastavro's ``schemaless_writer`` bytes for the same event (a property test holds
the two equal for every event type), with one deliberate difference: a decimal with trailing
zeros beyond the schema's scale (``Decimal("1.5000")`` in a scale-3 mass, which the models
accept: it is 1.5 kg) is written as its value, where fastavro refuses it. A value the schema
cannot hold (more places than the scale, more digits than the precision, an int outside 32
bits, a symbol not in the enum) raises :class:`AvroWriteError` naming the schema and reason.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.codegen import SourceGenerator

#: Writes one event's Avro body after ``prefix`` (the framing), returning the whole record.
ModelWriter = Callable[[Any, bytes], bytes]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class AvroWriteError(ValueError):
    """A value that the schema it is written with cannot hold."""


def _long(n: int) -> bytearray:
    """The zig-zag varint of ``n`` (any 64-bit long)."""
    n = (n << 1) ^ (n >> 63)
    if 1 << 49 <= n < 1 << 56:  # eight bytes: the microseconds of any time since 1988, unrolled
        return bytearray(
            (
                n & 0x7F | 0x80,
                n >> 7 & 0x7F | 0x80,
                n >> 14 & 0x7F | 0x80,
                n >> 21 & 0x7F | 0x80,
                n >> 28 & 0x7F | 0x80,
                n >> 35 & 0x7F | 0x80,
                n >> 42 & 0x7F | 0x80,
                n >> 49,
            )
        )
    if n < 0 or n >= 1 << 64:
        raise AvroWriteError(f"{(n >> 1) ^ -(n & 1)} does not fit an Avro long")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return out


def _int(n: int) -> bytearray:
    if not -(1 << 31) <= n < 1 << 31:
        raise AvroWriteError(f"{n} does not fit an Avro int (32 bits)")
    return _long(n)


def _decimal_problem(value: Decimal, scale: int, precision: int) -> AvroWriteError:
    numerator, denominator = value.as_integer_ratio()
    if numerator * 10**scale % denominator:
        return AvroWriteError(f"{value} has more decimal places than the schema's scale {scale}")
    return AvroWriteError(f"{value} has more digits than the schema's precision {precision}")


class _Generator(SourceGenerator):
    """Emits the source of one writer: statements per schema node, inlined."""

    def length(self, indent: int, value: str) -> None:
        """Write a non-negative count or size; one byte (the usual case) inline."""
        self.emit(indent, f"if {value} < 64: o.append({value} << 1)")
        self.emit(indent, f"else: o += _long({value})")

    def node(self, schema: Any, indent: int, value: str) -> None:
        """Emit code writing the Python value ``value`` (an expression) under ``schema``."""
        if isinstance(schema, str):
            if schema in self.names:
                return self.node(self.names[schema], indent, value)
            schema = {"type": schema}
        if isinstance(schema, list):
            return self.union(schema, indent, value)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if kind in ("record", "enum", "fixed") and "name" in schema:
            self.names[schema["name"]] = schema
        if kind == "null":
            pass
        elif kind == "boolean":
            self.emit(indent, f"o.append(1 if {value} else 0)")
        elif kind == "long" and logical == "timestamp-micros":
            # an aware datetime (the contracts hold no naive one: subtracting fails for those)
            self.emit(indent, f"o += _long(({value} - _EPOCH) // _MICROSECOND)")
        elif kind in ("int", "long"):
            n = self.var("n")
            self.emit(indent, f"{n} = {value}")
            self.emit(indent, f"if 0 <= {n} < 64: o.append({n} << 1)")
            self.emit(indent, f"else: o += {'_int' if kind == 'int' else '_long'}({n})")
        elif kind in ("float", "double"):
            self.emit(indent, f"o += _pack({'<f' if kind == 'float' else '<d'!r}, {value})")
        elif kind == "bytes" and logical == "decimal":
            s, d, n = self.var("s"), self.var("d"), self.var("n")
            scale, precision = schema.get("scale", 0), schema["precision"]
            v = self.var("v")
            self.emit(indent, f"{v} = {value}")
            # the exact fraction (one C call), scaled: a remainder means more places than the scale
            # (unbound: anything but a Decimal is refused, as fastavro refuses it)
            self.emit(indent, f"{n}, {d} = _ratio({v})")
            self.emit(indent, f"if {d} == 1: {n} *= {10**scale}")
            self.emit(indent, f"else: {n}, {d} = divmod({n} * {10**scale}, {d})")
            self.emit(indent, f"if {d} > 1 or not -{10**precision} < {n} < {10**precision}:")
            self.emit(indent + 1, f"raise _decimal_problem({v}, {scale}, {precision})")
            # sized as fastavro sizes it: by the magnitude, one byte more than it needs
            size = f"({n}.bit_length() + 8) // 8"
            self.emit(indent, f"{s} = {n}.to_bytes({size}, 'big', signed=True)")
            if (10**precision).bit_length() // 8 + 1 < 64:  # the size fits one varint byte
                self.emit(indent, f"o.append(len({s}) << 1)")
            else:
                n = self.var("n")
                self.emit(indent, f"{n} = len({s})")
                self.length(indent, n)
            self.emit(indent, f"o += {s}")
        elif kind in ("bytes", "string"):
            s = self.var("s")
            if kind == "bytes":
                self.emit(indent, f"{s} = {value}")
            elif logical == "uuid":
                self.emit(indent, f"{s} = str({value}).encode()")
            else:
                self.emit(indent, f"{s} = {value}.encode()")
            n = self.var("n")
            self.emit(indent, f"{n} = len({s})")
            self.length(indent, n)
            self.emit(indent, f"o += {s}")
        elif kind == "fixed":
            self.emit(indent, f"if len({value}) != {schema['size']}:")
            message = f"a fixed of size {schema['size']} expected"
            self.emit(indent + 1, f"raise AvroWriteError({message!r})")
            self.emit(indent, f"o += {value}")
        elif kind == "enum":
            index = self.const({sym: bytes(_long(i)) for i, sym in enumerate(schema["symbols"])})
            self.emit(indent, f"o += {index}[{value}]")
        elif kind == "record":
            # the instance's own dict: a subscript costs a fraction of an attribute lookup
            v = self.var("r")
            self.emit(indent, f"{v} = {value}.__dict__")
            for field in schema["fields"]:
                self.node(field["type"], indent, f"{v}[{field['name']!r}]")
        elif kind == "array" or kind == "map":
            self.blocks(schema, indent, value)
        else:
            raise TypeError(f"no writer for Avro type {kind!r}")
        return None

    def union(self, members: list[Any], indent: int, value: str) -> None:
        # The contracts map only 'X | None' to unions (catalog.derive_avro_schema).
        if len(members) != 2 or members[0] != "null":
            raise TypeError(f"only ['null', X] unions are written here, not {members}")
        v = self.var("u")
        self.emit(indent, f"{v} = {value}")
        self.emit(indent, f"if {v} is None: o.append(0)")
        self.emit(indent, "else:")
        self.emit(indent + 1, "o.append(2)")
        self.node(members[1], indent + 1, v)

    def blocks(self, schema: dict[str, Any], indent: int, value: str) -> None:
        """Arrays and maps as fastavro writes them: one block of every item, then 0."""
        v, n, item = self.var("a"), self.var("n"), self.var("i")
        self.emit(indent, f"{v} = {value}")
        self.emit(indent, f"{n} = len({v})")
        self.emit(indent, f"if {n}:")
        self.length(indent + 1, n)
        if schema["type"] == "map":
            key = self.var("k")
            self.emit(indent + 1, f"for {key}, {item} in {v}.items():")
            self.node("string", indent + 2, key)
            self.node(schema["values"], indent + 2, item)
        else:
            self.emit(indent + 1, f"for {item} in {v}:")
            self.node(schema["items"], indent + 2, item)
        self.emit(indent, "o.append(0)")


def writer(schema: dict[str, Any]) -> ModelWriter:
    """A writer of objects shaped like ``schema`` (as written, not fastavro-parsed): a record's
    fields are read as attributes, so a pydantic event of the schema's type fits."""
    gen = _Generator()
    gen.node(schema, 2, "event")
    name = schema.get("name", "?")
    source = "\n".join(
        [
            "def write(event, prefix):",
            "    o = bytearray(prefix)",
            "    try:",
            *gen.lines,
            "    except AvroWriteError as exc:",
            f"        raise AvroWriteError(f'cannot write {name}: {{exc}}') from None",
            "    except (KeyError, TypeError, AttributeError, ValueError, ArithmeticError) as exc:",
            f"        raise AvroWriteError(f'cannot write {name}: {{exc!r}}') from None",
            "    return bytes(o)",
        ]
    )
    namespace: dict[str, Any] = {
        "_long": _long,
        "_int": _int,
        "_decimal_problem": _decimal_problem,
        "_ratio": Decimal.as_integer_ratio,
        "_EPOCH": _EPOCH,
        "_MICROSECOND": _MICROSECOND,
        "_pack": struct.pack,
        "AvroWriteError": AvroWriteError,
        **gen.constants,
    }
    exec(compile(source, f"<writer of {name}>", "exec"), namespace)
    write: ModelWriter = namespace["write"]
    return write
