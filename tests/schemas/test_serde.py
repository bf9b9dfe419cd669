"""Serde framing, byte layout and error reporting."""

from __future__ import annotations

import contextlib
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import catalog
from schemas.serde import DecodeError, Serde, schema_registry_client
from tests.strategies import events


@given(events())
def test_single_object_header_is_magic_then_little_endian_crc64_fingerprint(event) -> None:
    data = Serde().encode(event, "t")
    fingerprint_hex = catalog.fastavro.schema.fingerprint(
        catalog.current(event.event_type).canonical, "CRC-64-AVRO"
    )
    assert data[:2] == bytes([0xC3, 0x01])
    assert data[2:10] == bytes.fromhex(fingerprint_hex)[::-1]


def test_confluent_header_is_zero_then_big_endian_schema_id(sample_event) -> None:
    registry = schema_registry_client("mock://layout")
    serde = Serde(registry)
    data = serde.encode(sample_event, "batteryloop.events.extraction")
    (schema_id,) = struct.unpack(">I", data[1:5])
    assert data[0] == 0
    assert registry.get_latest_version("batteryloop.events.extraction-value").schema_id == schema_id


def test_errors_name_topic_partition_offset_and_reason(sample_event) -> None:
    serde = Serde()
    good = serde.encode(sample_event, "t")
    cases = {
        b"": "empty value",
        b"{json}": "not framed Avro",
        b"\xc3\x01" + b"\x00" * 8 + good[10:]: "unknown writer schema fingerprint",
        good[:-5]: "does not match the extraction schema",
        b"\x00\x00\x00\x00\x07" + good[10:]: "no schema registry is configured",
    }
    for data, reason in cases.items():
        with pytest.raises(DecodeError) as info:
            serde.decode(data, topic="batteryloop.events.extraction", partition=3, offset=42)
        assert reason in str(info.value)
        assert "batteryloop.events.extraction[3]@42" in str(info.value)
        assert (info.value.topic, info.value.partition, info.value.offset) == (
            "batteryloop.events.extraction",
            3,
            42,
        )


def test_a_valid_avro_body_with_invalid_content_fails_validation_not_silently(sample_event) -> None:
    serde = Serde()
    record = sample_event.model_dump()
    record["composition"] = {"nickel": Decimal(1), "cobalt": Decimal(1)}  # sums to 2
    data = serde.encode_record("extraction", record, "t")
    assert serde.decode(data)[0] == "extraction"  # Avro is fine with it ...
    with pytest.raises(DecodeError, match="composition shares sum to 2"):
        serde.decode_event(data, topic="t", partition=0, offset=1)  # ... the contract is not


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_decode_error_or_decode(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Serde().decode_event(data)
