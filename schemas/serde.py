"""The one serde: events to Avro bytes and back.

Two framings, both decodable by :meth:`Serde.decode` whichever one a record carries:

* **Avro single-object encoding** (the default; needs no server)::

      C3 01 | 8-byte CRC-64-AVRO fingerprint of the writer schema, little-endian | Avro body

* **Confluent wire format** (when a schema registry is configured)::

      00 | 4-byte schema id, big-endian | Avro body

  Schemas are registered under the subject ``<topic>-value`` (TopicNameStrategy).

Besides the private event schemas, a serde can write and read *shared* schemas: the redacted
form of an event type that the mirror publishes to the partner region under a data-sharing
policy (``batteryloop.shared.*``, see ``connectors/mirror/policy.py``). A shared record is
decoded with its own schema, not resolved to the private one (which it deliberately lacks
fields of); the fields it lacks are the models' optional confidential ones.

The body of an event is written by a writer generated per schema (:mod:`schemas.writer`, the
same bytes as fastavro's schemaless encoding, several times faster); records given as dicts
(:meth:`Serde.encode_record`, :meth:`Serde.encode_as`) are written by fastavro, with parsed
schemas cached once per process. Data
written with an older version of a schema is resolved to the current version on decoding.

:meth:`Serde.decode_plain` is the processors' hot path: the same framing and schemas, read by
readers generated per schema into plain records (:mod:`schemas.plain`: decimals as unscaled
integers, times as microseconds, no validation beyond what Avro says).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import fastavro
from pydantic import ValidationError

from schemas import catalog, plain, writer
from schemas.catalog import SchemaVersion
from schemas.events import EVENT_MODELS, Event
from schemas.plain import PlainDecodeError, PlainReader
from schemas.writer import ModelWriter

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0
_SINGLE_HEADER = 10
_CONFLUENT_HEADER = 5
_ID = struct.Struct(">I")
#: Namespace of the schemas events are shared under (the private ones are ``batteryloop``).
SHARED_NAMESPACE = "batteryloop.shared"


class DecodeError(ValueError):
    """A record that cannot be turned into an event; says where it came from and why."""

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        where = f"{topic or '?'}[{'?' if partition is None else partition}]"
        where += f"@{'?' if offset is None else offset}"
        super().__init__(f"cannot decode record at {where}: {reason}")


class Serde:
    """Encodes events to framed Avro and decodes either framing back.

    ``registry``: a confluent-kafka ``SchemaRegistryClient``. With one, records are written
    in the Confluent wire format; without, in single-object encoding. ``shared``: shared
    schemas this serde should recognise by fingerprint when decoding single-object records.
    """

    def __init__(
        self, registry: SchemaRegistryClient | None = None, shared: Iterable[SchemaVersion] = ()
    ) -> None:
        self.registry = registry
        self._schema_ids: dict[tuple[str, bytes], int] = {}  # (topic, fingerprint) -> id
        # id -> (event_type, parsed writer, whether it is a shared schema)
        self._by_id: dict[int, tuple[str, Any, bool]] = {}
        self._raw_by_id: dict[int, dict[str, Any]] = {}  # id -> the writer schema as written
        # single-object fingerprint or registry id -> (event_type, plain reader, shared)
        self._plain_single: dict[bytes, tuple[str, PlainReader, bool]] = {}
        self._plain_by_id: dict[int, tuple[str, PlainReader, bool]] = {}
        self._shared = {s.fingerprint: s for s in shared}
        # (event_type, topic) -> (generated writer, framing header); writers per event type
        self._writers: dict[tuple[str, str], tuple[ModelWriter, bytes]] = {}
        self._writer_by_type: dict[str, ModelWriter] = {}
        # "ExtractionEvent" -> "extraction": private and shared schemas share the short name
        self._type_by_record_name = {
            _short(catalog.current(t).raw["name"]): t for t in EVENT_MODELS
        }

    @classmethod
    def for_registry(cls, url: str | None, shared: Iterable[SchemaVersion] = ()) -> Serde:
        """The serde for a deployment: the Confluent wire format with the schema registry at
        ``url``, single-object encoding when there is none."""
        return cls(schema_registry_client(url) if url else None, shared)

    # --- encoding --------------------------------------------------------------------------

    def encode(self, event: Event, topic: str) -> bytes:
        """Encode a validated event under its type's current schema, by the writer generated
        for that schema (:mod:`schemas.writer`: the model's attributes, no ``model_dump``).

        Raises :class:`~schemas.writer.AvroWriteError` for a value the schema cannot hold.
        """
        entry = self._writers.get((event.event_type, topic))
        if entry is None:
            entry = self._writer_entry(event.event_type, topic)
        write, header = entry
        return write(event, header)

    def _writer_entry(self, event_type: str, topic: str) -> tuple[ModelWriter, bytes]:
        """The writer of ``event_type``'s current schema and the framing for ``topic``
        (registering the schema first with a registry), cached per pair."""
        schema = catalog.current(event_type)
        write = self._writer_by_type.get(event_type)
        if write is None:
            write = self._writer_by_type[event_type] = writer.writer(schema.raw)
        entry = self._writers[(event_type, topic)] = (write, self.header(schema, topic))
        return entry

    def encode_record(self, event_type: str, record: dict[str, Any], topic: str) -> bytes:
        """Encode a record already shaped like the event type's model (no validation)."""
        return self.encode_as(catalog.current(event_type), record, topic)

    def encode_as(self, schema: SchemaVersion, record: dict[str, Any], topic: str) -> bytes:
        """Encode a record under ``schema`` (a private or a shared one; no validation)."""
        out = io.BytesIO()
        if self.registry is None:
            out.write(SINGLE_OBJECT_MAGIC)
            out.write(schema.fingerprint)
        else:
            out.write(bytes([CONFLUENT_MAGIC]))
            out.write(_ID.pack(self._registered_id(topic, schema)))
        fastavro.schemaless_writer(out, schema.parsed, record)
        return out.getvalue()

    def header(self, schema: SchemaVersion, topic: str) -> bytes:
        """The framing :meth:`encode_as` puts before the Avro body of a record under ``schema``
        (for writers that make the body themselves)."""
        if self.registry is None:
            return SINGLE_OBJECT_MAGIC + schema.fingerprint
        return bytes([CONFLUENT_MAGIC]) + _ID.pack(self._registered_id(topic, schema))

    def _registered_id(self, topic: str, schema: SchemaVersion) -> int:
        key = (topic, schema.fingerprint)
        schema_id = self._schema_ids.get(key)
        if schema_id is None:
            from confluent_kafka.schema_registry import Schema

            assert self.registry is not None
            schema_id = self.registry.register_schema(
                f"{topic}-value", Schema(catalog.render(schema.raw), "AVRO")
            )
            self._schema_ids[key] = schema_id
            shared = schema.raw["name"].startswith(SHARED_NAMESPACE + ".")
            self._by_id[schema_id] = (schema.event_type, schema.parsed, shared)
            self._raw_by_id[schema_id] = schema.raw
        return schema_id

    # --- decoding --------------------------------------------------------------------------

    def decode(
        self,
        data: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Decode framed Avro to ``(event_type, record)``, resolved to the current schema.

        Raises :class:`DecodeError` naming the topic, partition, offset and reason.
        """

        def fail(reason: str) -> DecodeError:
            return DecodeError(reason, topic=topic, partition=partition, offset=offset)

        writer_key, body = _frame(data, fail)
        if isinstance(writer_key, bytes):
            known = catalog.by_fingerprint().get(writer_key)
            if known is not None:
                event_type, writer = known.event_type, known.parsed
                reader = catalog.current(event_type).parsed
            elif writer_key in self._shared:
                shared = self._shared[writer_key]
                event_type, writer, reader = shared.event_type, shared.parsed, shared.parsed
            else:
                raise fail(_unknown_fingerprint(writer_key))
        else:
            event_type, writer, reader = self._writer_by_id(writer_key, fail)
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(body),
                writer,
                None if writer is reader else reader,
            )
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
            raise fail(f"Avro body does not match the {event_type} schema: {exc!r}") from exc
        if not isinstance(record, dict):
            raise fail(f"Avro body is not a record: {type(record).__name__}")
        return event_type, record

    def decode_event(
        self,
        data: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> Event:
        """Decode and validate into the event's pydantic model."""
        event_type, record = self.decode(data, topic=topic, partition=partition, offset=offset)
        try:
            return EVENT_MODELS[event_type].model_validate(record)
        except ValidationError as exc:
            raise DecodeError(
                f"invalid {event_type} event: {describe_validation_error(exc)}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from exc

    def _writer_by_id(self, schema_id: int, fail: Any) -> tuple[str, Any, Any]:
        """(event type, writer, reader) of a registered schema; a shared writer reads as is."""
        found = self._by_id.get(schema_id)
        if found is not None:
            known_type, writer, shared = found
            return known_type, writer, writer if shared else catalog.current(known_type).parsed
        if self.registry is None:
            raise fail(
                f"Confluent wire format with schema id {schema_id}, but no schema registry is "
                "configured (set BATTERYLOOP_SCHEMA_REGISTRY_URL)"
            )
        try:
            registered = self.registry.get_schema(schema_id)
            raw = json.loads(registered.schema_str or "null")
        except Exception as exc:
            raise fail(f"schema id {schema_id} not found in the registry: {exc}") from exc
        name = raw.get("name") if isinstance(raw, dict) else None
        event_type = self._type_by_record_name.get(_short(name)) if isinstance(name, str) else None
        if event_type is None or not isinstance(name, str):
            raise fail(f"schema id {schema_id} is not a batteryloop event schema")
        shared = name.startswith(SHARED_NAMESPACE + ".")
        self._by_id[schema_id] = (event_type, fastavro.parse_schema(raw), shared)
        self._raw_by_id[schema_id] = raw
        return self._writer_by_id(schema_id, fail)

    # --- the hot path: plain records ------------------------------------------------------

    def decode_plain(
        self,
        data: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> tuple[str, dict[str, Any], bool]:
        """Decode framed Avro to ``(event_type, plain record, written with a shared schema)``.

        The same framings, schemas and resolution of older versions as :meth:`decode`, read
        into a plain record (:mod:`schemas.plain`) instead of logical-type objects; no
        validation. Raises :class:`DecodeError` naming the topic, partition, offset and reason.
        """
        entry: tuple[str, PlainReader, bool] | None
        if data and data[:2] == SINGLE_OBJECT_MAGIC:
            entry = self._plain_single.get(data[2:_SINGLE_HEADER])
        elif data and data[0] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            entry = self._plain_by_id.get(_ID.unpack_from(data, 1)[0])
        else:
            entry = None
        if entry is None:
            entry = self._plain_entry(data, topic, partition, offset)  # raises if unframed
        assert data is not None
        header = _SINGLE_HEADER if data[0] != CONFLUENT_MAGIC else _CONFLUENT_HEADER
        event_type, read, shared = entry
        try:
            return event_type, read(data[header:]), shared
        except PlainDecodeError as exc:
            raise DecodeError(
                f"Avro body does not match the {event_type} schema: {exc}",
                topic=topic,
                partition=partition,
                offset=offset,
            ) from None

    def _plain_entry(
        self, data: bytes | None, topic: str | None, partition: int | None, offset: int | None
    ) -> tuple[str, PlainReader, bool]:
        """Find the writer schema of a record not seen before (or fail like :meth:`decode`)
        and cache a plain reader for it."""

        def fail(reason: str) -> DecodeError:
            return DecodeError(reason, topic=topic, partition=partition, offset=offset)

        writer_key, _ = _frame(data, fail)
        if isinstance(writer_key, bytes):
            known = catalog.by_fingerprint().get(writer_key)
            if known is not None:
                entry = (known.event_type, _private_reader(known.raw, known.event_type), False)
            elif writer_key in self._shared:
                shared = self._shared[writer_key]
                entry = (shared.event_type, plain.reader(shared.raw), True)
            else:
                raise fail(_unknown_fingerprint(writer_key))
            self._plain_single[writer_key] = entry
            return entry
        event_type, _, is_shared = self._writer_by_id(writer_key, fail)
        raw = self._raw_by_id[writer_key]
        read = plain.reader(raw) if is_shared else _private_reader(raw, event_type)
        self._plain_by_id[writer_key] = (event_type, read, is_shared)
        return self._plain_by_id[writer_key]


def _frame(
    data: bytes | None, fail: Callable[[str], DecodeError]
) -> tuple[bytes | int, memoryview]:
    """How framed Avro names its writer schema, and its body: the fingerprint for the
    single-object encoding, the registry schema id for the Confluent wire format. Raises
    ``fail(reason)`` for an empty or unframed value."""
    if not data:
        raise fail("empty value (a tombstone or an empty record)")
    if data[:2] == SINGLE_OBJECT_MAGIC:
        return data[2:_SINGLE_HEADER], memoryview(data)[_SINGLE_HEADER:]
    if data[0] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
        return _ID.unpack_from(data, 1)[0], memoryview(data)[_CONFLUENT_HEADER:]
    raise fail(
        f"not framed Avro: starts with {data[:2].hex()}, expected c301 (single-object) "
        "or 00 (Confluent wire format)"
    )


def _unknown_fingerprint(fingerprint: bytes) -> str:
    return (
        f"unknown writer schema fingerprint {fingerprint.hex()} (not a batteryloop schema, "
        "a shared schema this reader was not given, or newer than this reader)"
    )


def _private_reader(writer: dict[str, Any], event_type: str) -> PlainReader:
    """A plain reader of data written with ``writer``, a version of ``event_type``'s private
    schema: generated when it is the current version, resolved by fastavro when older."""
    current = catalog.current(event_type)
    if fastavro.schema.to_parsing_canonical_form(writer) == current.canonical:
        return plain.reader(current.raw)
    return plain.resolving_reader(writer, current.raw)


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def schema_registry_client(url: str, config: dict[str, str] | None = None) -> SchemaRegistryClient:
    """A registry client for ``url`` (``mock://`` gives confluent-kafka's in-process mock)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({"url": url, **(config or {})})
