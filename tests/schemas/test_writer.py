"""The generated Avro writers: fastavro's bytes, exactly, for every event the SDK writes."""

from __future__ import annotations

import io
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import catalog
from schemas.events import EVENT_MODELS, Event
from schemas.serde import SINGLE_OBJECT_MAGIC, Serde, schema_registry_client
from schemas.writer import AvroWriteError, writer
from tests.strategies import events

# Generous: the examples are big events, and the machines running this are shared.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
WRITERS = {t: writer(catalog.current(t).raw) for t in EVENT_MODELS}


def fastavro_body(schema: Any, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()


# The SDK writes the current schema of each event type (older versions are only read).
@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
@relaxed
@given(data=st.data())
def test_the_writer_gives_fastavros_bytes_for_every_event_type(event_type: str, data) -> None:
    event: Event = data.draw(events(event_type))
    schema = catalog.current(event_type)
    expected = fastavro_body(schema.raw, event.model_dump())
    assert WRITERS[event_type](event, b"") == expected
    assert WRITERS[event_type](event, b"\xc3\x01prefix") == b"\xc3\x01prefix" + expected


@relaxed
@given(events())
def test_serde_encode_is_the_framing_then_fastavros_body_and_decodes_back(event: Event) -> None:
    serde = Serde()
    schema = catalog.current(event.event_type)
    data = serde.encode(event, "t")
    assert data == SINGLE_OBJECT_MAGIC + schema.fingerprint + fastavro_body(
        schema.raw, event.model_dump()
    )
    assert serde.decode_event(data) == event


def test_the_registry_framing_is_written_per_topic(sample_event) -> None:
    registry = schema_registry_client("mock://writer")
    serde = Serde(registry)
    a = serde.encode(sample_event, "topic-a")
    b = serde.encode(sample_event, "topic-b")
    assert a[0] == b[0] == 0 and a[5:] == b[5:]
    for topic, data in (("topic-a", a), ("topic-b", b)):
        registered = registry.get_latest_version(f"{topic}-value").schema_id
        assert int.from_bytes(data[1:5], "big") == registered
    assert serde.decode_event(a) == sample_event


# A schema with every Avro type the writer knows, values over their whole range: the event
# schemas hold only small non-negative ints, few enum symbols and no floats.
SYMBOLS = [f"S{i}" for i in range(70)]  # past 63: an enum index of two varint bytes
EVERYTHING = {
    "type": "record",
    "name": "test.Everything",
    "fields": [
        {"name": "a_long", "type": "long"},
        {"name": "an_int", "type": "int"},
        {"name": "a_flag", "type": "boolean"},
        {"name": "a_double", "type": "double"},
        {"name": "a_float", "type": "float"},
        {"name": "some_bytes", "type": "bytes"},
        {"name": "a_fixed", "type": {"type": "fixed", "name": "test.Four", "size": 4}},
        {"name": "a_symbol", "type": {"type": "enum", "name": "test.Many", "symbols": SYMBOLS}},
        {
            "name": "an_amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },  # noqa: E501
        {"name": "texts", "type": {"type": "map", "values": {"type": "array", "items": "string"}}},
        {"name": "maybe", "type": ["null", "test.Four"], "default": None},
    ],
}


EVERYTHING_WRITER = writer(EVERYTHING)


@relaxed
@given(
    a_long=st.integers(-(2**63), 2**63 - 1),
    an_int=st.integers(-(2**31), 2**31 - 1),
    a_flag=st.booleans(),
    a_double=st.floats(allow_nan=False),
    a_float=st.floats(width=32, allow_nan=False),
    some_bytes=st.binary(max_size=300),
    a_fixed=st.binary(min_size=4, max_size=4),
    a_symbol=st.sampled_from(SYMBOLS),
    an_amount=st.decimals(Decimal("-9999999.99"), Decimal("9999999.99"), places=2),
    texts=st.dictionaries(st.text(max_size=80), st.lists(st.text(max_size=5), max_size=70)),
    maybe=st.none() | st.binary(min_size=4, max_size=4),
)
def test_every_avro_type_over_its_range_matches_fastavro(**values: Any) -> None:
    written = EVERYTHING_WRITER(SimpleNamespace(**values), b"")
    assert written == fastavro_body(EVERYTHING, values)


AMOUNT = {
    "type": "record",
    "name": "test.Amount",
    "fields": [
        {
            "name": "value",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
        }  # noqa: E501
    ],
}


@pytest.mark.parametrize("text", ["1.5", "-1.28", "1.28", "0", "-0", "1E+2", "999.99", "-999.99"])
def test_decimals_are_sized_as_fastavro_sizes_them(text: str) -> None:
    value = Decimal(text)
    assert writer(AMOUNT)(SimpleNamespace(value=value), b"") == fastavro_body(
        AMOUNT, {"value": value}
    )


def test_trailing_zeros_beyond_the_scale_are_written_as_the_value() -> None:
    # fastavro refuses Decimal("1.5000") at scale 2 although it is 1.50 exactly
    written = writer(AMOUNT)(SimpleNamespace(value=Decimal("1.5000")), b"")
    assert written == fastavro_body(AMOUNT, {"value": Decimal("1.50")})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (Decimal("1.005"), "more decimal places than the schema's scale 2"),
        (Decimal("1000.00"), "more digits than the schema's precision 5"),
        (Decimal("NaN"), "cannot write test.Amount"),
        (1.5, "cannot write test.Amount"),
    ],
)
def test_a_value_the_schema_cannot_hold_is_refused_with_the_reason(value: Any, reason: str) -> None:
    with pytest.raises(AvroWriteError, match=reason) as info:
        writer(AMOUNT)(SimpleNamespace(value=value), b"")
    assert "test.Amount" in str(info.value)


def test_ints_and_enum_symbols_out_of_range_are_refused() -> None:
    values = dict(
        a_long=0, an_int=2**31, a_flag=True, a_double=0.0, a_float=0.0, some_bytes=b"",
        a_fixed=b"1234", a_symbol="S1", an_amount=Decimal(0), texts={}, maybe=None,
    )  # fmt: skip
    with pytest.raises(AvroWriteError, match="does not fit an Avro int"):
        writer(EVERYTHING)(SimpleNamespace(**values), b"")
    with pytest.raises(AvroWriteError, match="does not fit an Avro long"):
        writer(EVERYTHING)(SimpleNamespace(**{**values, "an_int": 0, "a_long": 2**63}), b"")
    with pytest.raises(AvroWriteError, match="'S70'"):
        writer(EVERYTHING)(SimpleNamespace(**{**values, "an_int": 0, "a_symbol": "S70"}), b"")
